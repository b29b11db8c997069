"""The process runtime's pure translation of a pod spec into a process and its probes."""

from __future__ import annotations

import pytest

from sandbox.podspec import (
    PodSpecError,
    Probe,
    ProbeTracker,
    container_argv,
    container_env,
    expand,
    field_ref,
    parse_probe,
    restart_backoff,
    should_restart,
    termination_message,
)

POD = {
    "metadata": {"name": "web-1", "namespace": "ml", "uid": "u-1", "labels": {"app": "bert"}},
    "spec": {"nodeName": "gpu-0"},
}


def test_expand_replaces_known_keeps_unknown_and_unescapes() -> None:
    env = {"POD_IP": "127.1.129.1"}
    assert expand("--host=$(POD_IP)", env) == "--host=127.1.129.1"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$$(POD_IP)", env) == "$(POD_IP)"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("status.podIP", "127.1.129.1"),
        ("status.hostIP", "127.1.0.1"),
        ("metadata.name", "web-1"),
        ("metadata.namespace", "ml"),
        ("spec.nodeName", "gpu-0"),
        ("metadata.labels['app']", "bert"),
    ],
)
def test_field_ref(path: str, expected: str) -> None:
    assert field_ref(POD, path, "127.1.129.1", "127.1.0.1") == expected


def test_field_ref_unsupported_is_a_clear_error() -> None:
    with pytest.raises(PodSpecError, match=r"status\.phase"):
        field_ref(POD, "status.phase", "127.1.129.1", "127.1.0.1")


def test_env_resolves_literals_in_order_and_field_refs() -> None:
    container = {
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "URL", "value": "http://$(POD_IP):8080"},
            {"name": "EMPTY"},
        ]
    }
    env = container_env(POD, container, "127.1.129.7", "127.1.0.1")
    assert env == {"POD_IP": "127.1.129.7", "URL": "http://127.1.129.7:8080", "EMPTY": ""}


def test_env_from_a_secret_key_as_the_kubelet_reads_it() -> None:
    secrets = {("store", "endpoint"): "http://127.0.0.1:16428"}

    def lookup(name: str, key: str) -> str | None:
        return secrets.get((name, key))

    ref = {"secretKeyRef": {"name": "store", "key": "endpoint"}}
    missing = {"secretKeyRef": {"name": "store", "key": "region"}}
    optional = {"secretKeyRef": {"name": "other", "key": "k", "optional": True}}
    container = {
        "env": [
            {"name": "ENDPOINT", "valueFrom": ref},
            {"name": "MAYBE", "valueFrom": optional},
        ]
    }
    env = container_env(POD, container, "127.1.129.7", "127.1.0.1", lookup)
    assert env == {"ENDPOINT": "http://127.0.0.1:16428"}  # an optional missing key: unset
    container = {"env": [{"name": "REGION", "valueFrom": missing}]}
    with pytest.raises(PodSpecError, match=r"REGION.*key region in Secret store"):
        container_env(POD, container, "127.1.129.7", "127.1.0.1", lookup)


def test_env_from_a_config_map_is_refused_with_the_variable_named() -> None:
    container = {
        "env": [{"name": "TOKEN", "valueFrom": {"configMapKeyRef": {"name": "s", "key": "k"}}}]
    }
    with pytest.raises(PodSpecError, match="TOKEN"):
        container_env(POD, container, "127.1.129.7", "127.1.0.1")


def test_argv_is_command_plus_args_expanded() -> None:
    container = {"name": "c", "command": ["serve"], "args": ["--host=$(POD_IP)", "--port=80"]}
    assert container_argv(container, {"POD_IP": "127.2.130.1"}) == [
        "serve",
        "--host=127.2.130.1",
        "--port=80",
    ]


def test_argv_without_command_is_refused() -> None:
    with pytest.raises(PodSpecError, match="no command"):
        container_argv({"name": "c", "args": ["x"]}, {})


def test_http_probe_resolves_named_port_and_defaults() -> None:
    container = {"ports": [{"name": "http", "containerPort": 8080}]}
    probe = parse_probe({"httpGet": {"path": "/v2/health/ready", "port": "http"}}, container)
    assert probe == Probe(
        "httpGet",
        port=8080,
        path="/v2/health/ready",
        period=10.0,
        timeout=1.0,
        success_threshold=1,
        failure_threshold=3,
    )


def test_probe_with_unknown_named_port_is_refused() -> None:
    with pytest.raises(PodSpecError, match="grpc"):
        parse_probe({"tcpSocket": {"port": "grpc"}}, {"ports": []})


def test_no_probe_is_none() -> None:
    assert parse_probe(None, {}) is None


def test_probe_tracker_applies_thresholds() -> None:
    tracker = ProbeTracker(
        Probe("httpGet", success_threshold=2, failure_threshold=3), healthy=False
    )
    assert not tracker.record(True)
    assert tracker.record(True) and tracker.healthy
    assert not tracker.record(False) and not tracker.record(False)
    assert tracker.record(False) and not tracker.healthy
    # A success resets the failure streak.
    tracker.record(True)
    tracker.record(True)
    tracker.record(False)
    tracker.record(True)
    assert tracker.failures == 0 and tracker.healthy


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [
        ("Always", 0, True),
        ("Always", 1, True),
        ("OnFailure", 0, False),
        ("OnFailure", 2, True),
        ("Never", 1, False),
    ],
)
def test_restart_policy(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


def test_backoff_grows_and_is_capped() -> None:
    assert [restart_backoff(n) for n in range(0, 7)] == [0.0, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_termination_message_is_the_failed_runs_log_tail_only_when_asked() -> None:
    fallback = {"terminationMessagePolicy": "FallbackToLogsOnError"}
    log = (
        "--- 2026-01-01T00:00:00Z start ['serve'] (restart 0)\nold run\n"
        "--- 2026-01-01T00:00:05Z start ['serve'] (restart 1)\n"
        "modeldr-serve: refusing to start: sha256 mismatch for /m/model.safetensors\n"
    )
    assert termination_message(fallback, 3, log) == (
        "modeldr-serve: refusing to start: sha256 mismatch for /m/model.safetensors"
    )
    assert termination_message(fallback, 0, log) == ""  # a clean exit has no message
    assert termination_message({}, 3, log) == ""  # the default policy reads a file we lack
    long = "--- start\n" + "\n".join(f"line {i}" for i in range(500))
    tail = termination_message(fallback, 1, long)
    assert tail.splitlines()[-1] == "line 499" and len(tail.splitlines()) <= 80
    assert len(termination_message(fallback, 1, "x" * 5000).encode()) == 2048
