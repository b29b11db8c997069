"""The HTTP API of a real `modeldr-serve` process: V2, /predict, clients, errors, metrics."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families

from tests.serving.conftest import Launcher, ModelDir, ServerProcess

pytestmark = pytest.mark.serving

TEXTS = ["good movie", "the server is broken and slow", "a", "ready to serve " * 5]


@pytest.fixture(scope="module")
def classifier(module_launcher: Launcher, classifier_dir: ModelDir) -> Iterator[ServerProcess]:
    yield module_launcher(
        classifier_dir,
        "--max-batch-delay-ms",
        "50",
        "--max-texts-per-request",
        "8",
        "--max-seq-length",
        "64",
        "--max-body-bytes",
        "65536",
        "--expected-digest",
        f"sha256:{classifier_dir.digest}",
    )


@pytest.fixture(scope="module")
def embedder(module_launcher: Launcher, embedder_dir: ModelDir) -> Iterator[ServerProcess]:
    yield module_launcher(embedder_dir, "--max-seq-length", "16", "--truncate", name="embedder")


def v2_body(texts: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}],
        **extra,
    }


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of name whose labels include the given ones."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def test_unpinned_digest_warning_only_without_a_pin(
    classifier: ServerProcess, embedder: ServerProcess
) -> None:
    assert "no expected digest pinned" not in classifier.log()  # started with the digest
    assert "WARNING modeldr.serving: no expected digest pinned" in embedder.log()


def test_health_and_metadata(classifier: ServerProcess, classifier_dir: ModelDir) -> None:
    with httpx.Client(base_url=classifier.base_url, timeout=10) as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert client.get("/v2/models/tiny/ready").json()["ready"] is True
        server = client.get("/v2").json()
        assert server["name"] == "modeldr-serve"
        assert "binary_tensor_data" in server["extensions"]
        model = client.get("/v2/models/tiny").json()
        assert model["name"] == "tiny"
        assert model["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        assert [o["name"] for o in model["outputs"]] == ["label", "probabilities"]
        # What it serves, asked of the server: the digest of the files it verified.
        assert model["parameters"]["digest"] == f"sha256:{classifier_dir.digest}"
        version = model["versions"][0]
        assert client.get(f"/v2/models/tiny/versions/{version}").json() == model
        missing = client.get("/v2/models/other")
        assert missing.status_code == 404
        assert missing.json() == {"error": "unknown model 'other'; this server serves 'tiny'"}
        assert client.get("/v2/models/tiny/versions/nope/ready").status_code == 404


def test_v2_and_json_agree(classifier: ServerProcess) -> None:
    with httpx.Client(base_url=classifier.base_url, timeout=30) as client:
        plain = client.post("/predict", json={"texts": TEXTS})
        assert plain.status_code == 200, plain.text
        predictions = plain.json()["predictions"]
        v2 = client.post("/v2/models/tiny/infer", json=v2_body(TEXTS, id="q-1"))
        assert v2.status_code == 200, v2.text
    document = v2.json()
    assert document["id"] == "q-1"
    assert document["model_name"] == "tiny"
    outputs = {o["name"]: o for o in document["outputs"]}
    assert outputs["label"]["shape"] == [len(TEXTS)]
    assert outputs["probabilities"]["shape"] == [len(TEXTS), 2]
    probabilities = np.array(outputs["probabilities"]["data"]).reshape(len(TEXTS), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert outputs["label"]["data"] == [p["label"] for p in predictions]
    plain_probabilities = np.array(
        [[p["probabilities"]["negative"], p["probabilities"]["positive"]] for p in predictions]
    )
    # Padding differs between batches; masked attention keeps results equal up to float noise.
    np.testing.assert_allclose(probabilities, plain_probabilities, atol=1e-5)
    # Different texts give different answers: the model really ran on each input.
    assert len({round(row[0], 7) for row in probabilities.tolist()}) > 1


def test_embeddings_agree(embedder: ServerProcess) -> None:
    texts = ["model server", "failover drill " * 20]  # the second is truncated to 16 tokens
    with httpx.Client(base_url=embedder.base_url, timeout=30) as client:
        plain = client.post("/predict", json={"texts": texts})
        assert plain.status_code == 200, plain.text
        v2 = client.post("/v2/models/embedder/infer", json=v2_body(texts))
        assert v2.status_code == 200, v2.text
    (output,) = v2.json()["outputs"]
    assert output["name"] == "embedding"
    assert output["shape"] == [2, 32]
    embeddings = np.array(output["data"]).reshape(2, 32)
    np.testing.assert_allclose(embeddings, np.array(plain.json()["embeddings"]), atol=1e-5)
    assert not np.allclose(embeddings[0], embeddings[1])


def test_tritonclient_http(classifier: ServerProcess) -> None:
    client = triton.InferenceServerClient(url=f"127.0.0.1:{classifier.port}", network_timeout=30)
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("tiny")
        assert client.get_model_metadata("tiny")["inputs"][0]["datatype"] == "BYTES"
        data = np.array([t.encode() for t in TEXTS], dtype=np.object_)
        binary_input = triton.InferInput("text", [len(TEXTS)], "BYTES")
        binary_input.set_data_from_numpy(data)  # binary tensor extension, the default
        result = client.infer("tiny", [binary_input])  # all outputs, binary by default
        json_input = triton.InferInput("text", [len(TEXTS)], "BYTES")
        json_input.set_data_from_numpy(data, binary_data=False)
        json_result = client.infer(
            "tiny",
            [json_input],
            outputs=[triton.InferRequestedOutput("probabilities", binary_data=False)],
            request_compression_algorithm="gzip",
        )
    finally:
        client.close()
    probabilities = result.as_numpy("probabilities")
    labels = result.as_numpy("label")
    assert probabilities is not None and labels is not None
    assert probabilities.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(json_result.as_numpy("probabilities"), probabilities, atol=1e-5)
    assert json_result.as_numpy("label") is None  # not requested
    predictions = httpx.post(classifier.url("/predict"), json={"texts": TEXTS}, timeout=30).json()
    assert [x.decode() for x in labels.tolist()] == [p["label"] for p in predictions["predictions"]]


def test_kserve_rest_client(classifier: ServerProcess) -> None:
    # Imported here: the KServe SDK is heavy, only this test needs it. It ships no types.
    from kserve import InferInput, InferRequest  # type: ignore[import-untyped]
    from kserve.inference_client import (  # type: ignore[import-untyped]
        InferenceRESTClient,
        RESTConfig,
    )

    async def call() -> tuple[bool, bool, Any]:
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
        try:
            live = await client.is_server_live(classifier.base_url)
            ready = await client.is_model_ready(classifier.base_url, "tiny")
            tensor = InferInput(name="text", shape=[len(TEXTS)], datatype="BYTES", data=TEXTS)
            request = InferRequest(model_name="tiny", infer_inputs=[tensor], request_id="k-1")
            response = await client.infer(classifier.base_url, request, model_name="tiny")
        finally:
            await client.close()
        return live, ready, response

    live, ready, response = asyncio.run(call())
    assert live is True and ready is True
    assert response.id == "k-1"
    outputs = {o.name: o for o in response.outputs}
    probabilities = np.asarray(outputs["probabilities"].as_numpy(), dtype=np.float64)
    assert probabilities.reshape(-1, 2).shape == (len(TEXTS), 2)
    np.testing.assert_allclose(probabilities.reshape(-1, 2).sum(axis=1), 1.0, rtol=1e-5)


BAD_INPUTS: list[tuple[str, str, bytes, dict[str, str], int, str]] = [
    ("POST", "/predict", b'{"texts": ["a",', {}, 400, "malformed JSON at line 1"),
    ("POST", "/predict", b'{"texts": "a"}', {}, 400, "texts: Input should be a valid list"),
    ("POST", "/predict", b'{"texts": []}', {}, 400, "no texts given"),
    ("POST", "/predict", json.dumps({"texts": ["a"] * 9}).encode(), {}, 413, "the limit is 8"),
    (
        "POST",
        "/predict",
        json.dumps({"texts": ["model " * 80]}).encode(),
        {},
        413,
        "text 0 is 82 tokens long; the limit is 64 tokens",
    ),
    (
        "POST",
        "/v2/models/tiny/infer",
        json.dumps(
            {"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
        ).encode(),
        {},
        400,
        "input 'text' has datatype FP32; expected BYTES",
    ),
    (
        "POST",
        "/v2/models/tiny/infer",
        json.dumps(
            v2_body(["a", "b"]) | {"inputs": [v2_body(["a", "b"])["inputs"][0] | {"shape": [3]}]}
        ).encode(),
        {},
        400,
        "has shape [3] (3 elements) but data holds 2",
    ),
    (
        "POST",
        "/v2/models/tiny/infer",
        json.dumps(v2_body(["a"]) | {"outputs": [{"name": "logits"}]}).encode(),
        {},
        400,
        "unknown output 'logits'",
    ),
    ("POST", "/v2/models/tiny/infer", b"x" * 70000, {}, 413, "the limit is 65536"),
    ("POST", "/v2/models/nope/infer", b"{}", {}, 404, "unknown model 'nope'"),
    ("POST", "/predict", b"{}", {"Content-Encoding": "br"}, 415, "unsupported Content-Encoding"),
    ("GET", "/predict", b"", {}, 405, "Method Not Allowed"),
    ("GET", "/v3/anything", b"", {}, 404, "Not Found"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "fragment"),
    BAD_INPUTS,
    ids=[f"{row[4]}-{row[5][:30]}" for row in BAD_INPUTS],
)
def test_bad_input(
    classifier: ServerProcess,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    fragment: str,
) -> None:
    response = httpx.request(
        method, classifier.url(path), content=body, headers=headers, timeout=30
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment in error
    assert "Traceback" not in response.text


def test_concurrent_requests_are_batched(classifier: ServerProcess) -> None:
    before = httpx.get(classifier.url("/metrics"), timeout=10).text
    barrier = threading.Barrier(12)
    statuses: list[int] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        with httpx.Client(base_url=classifier.base_url, timeout=30) as http:
            barrier.wait(timeout=30)
            for round_ in range(4):  # bounded: 12 clients x 4 requests
                response = http.post("/predict", json={"texts": [f"request {index} {round_}"]})
                with lock:
                    statuses.append(response.status_code)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200] * 48
    after = httpx.get(classifier.url("/metrics"), timeout=10).text
    batches = metric(after, "modeldr_serve_batch_size_count") - metric(
        before, "modeldr_serve_batch_size_count"
    )
    single = metric(after, "modeldr_serve_batch_size_bucket", le="1.0") - metric(
        before, "modeldr_serve_batch_size_bucket", le="1.0"
    )
    texts = metric(after, "modeldr_serve_batch_size_sum") - metric(
        before, "modeldr_serve_batch_size_sum"
    )
    assert texts == 48
    assert batches < 48, "every request ran alone: nothing was batched"
    assert batches - single > 0, "no batch held more than one text"


def test_metrics_exposition(classifier: ServerProcess, classifier_dir: ModelDir) -> None:
    httpx.post(classifier.url("/predict"), json={"texts": ["warm"]}, timeout=30)
    text = httpx.get(classifier.url("/metrics"), timeout=10).text
    for name in (
        "modeldr_serve_request_duration_seconds",
        "modeldr_serve_queue_wait_seconds",
        "modeldr_serve_batch_size",
        "modeldr_serve_inference_duration_seconds",
    ):
        assert f"# TYPE {name} histogram" in text
    assert "summary" not in text
    assert (
        metric(
            text,
            "modeldr_serve_model_info",
            model="tiny",
            digest=f"sha256:{classifier_dir.digest}",
            device="cpu",
            dtype="float32",
            task="sequence-classification",
        )
        == 1
    )
    assert metric(text, "modeldr_serve_ready") == 1
    assert metric(text, "modeldr_serve_draining") == 0
    assert metric(text, "modeldr_serve_requests_total", route="/predict", code="200") >= 1
    assert metric(text, "modeldr_serve_requests_total", route="/v2/models/{name}/infer") >= 1
    assert "modeldr_serve_inflight_requests " in text
    assert "modeldr_serve_queue_depth 0.0" in text
    assert metric(text, "process_resident_memory_bytes") > 0
