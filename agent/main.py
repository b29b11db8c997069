"""`modeldr agent`: the node agent. One per node (a DaemonSet with hostNetwork and
CAP_NET_ADMIN only), it applies the part of each NetworkFault that concerns pods on its node
as nftables rules in table `inet modeldr_agent` (Latency: a tc netem qdisc on the targets'
devices, where the kernel has netem), and reports per node in the order's status.

The loop (at least every TICK_S, at once on a watch event): decide what the chains must hold
(decide.desired: live, unexpired orders with targets here), replace the chains in one nft
transaction when that changed, and write this node's report where it changed. So an order
that expires is undone by the agent itself within a tick, a deleted one as soon as the watch
says so, and at start every rule no live order backs is gone with the first transaction.
It also watches its own Node and undoes a drill's cordon or GPU taint there when its
expiry annotation passes (nodereaper.py): those faults too end with no operator.
On SIGTERM (the pod deleted, the chart uninstalled) the agent removes its rules. After a
SIGKILL the kernel still ends each fault at its expiry (the addresses are set elements with
timeouts: rules.py); the inert rules and sets stay until the agent runs again and removes
those no live order backs. A renewal (a later expiresAt) re-applies the transaction.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config

from modeldr.agent import decide, netem, nft, nodereaper, rules, tc, tcrules
from modeldr.agent.watch import OrderCache, parse
from modeldr.api.networkfault import GROUP, PLURAL, VERSION, NodeReport, NodeState, Order

log = logging.getLogger("modeldr.agent")

# The pods on this node are read again when the orders' targets change, and this often while
# orders are held (a target pod gone and its address reused must not stay faulted).
POD_REFRESH_S = 10.0
# Expiry is checked at least this often (the contract: at least every second), and at the
# earliest expiry of a held order, so an order ends within milliseconds of its expiresAt.
TICK_S = 0.5
PATCH_TIMEOUT = (3.0, 10.0)


def _now() -> datetime:
    return datetime.now(UTC)


class Agent:
    def __init__(
        self,
        api: client.CustomObjectsApi,
        node: str,
        node_ip: str,
        cluster: str,
        pod: str,
        core: client.CoreV1Api | None = None,
    ) -> None:
        self.api = api
        self.node = node
        self.node_ip = node_ip
        self.pod = pod
        self.base = rules.chain_base(cluster, node)
        self.cache = OrderCache(api)
        self.core = core or client.CoreV1Api(api.api_client)
        self.node_watch = nodereaper.NodeWatch(self.core, node, self.cache.changed)
        self._node_due: datetime | None = None  # the next expiry of a fault on the Node
        # The pods on this node, as last read (None: the read failed: `_pods_error` says why).
        self._pods: list[decide.PodFacts] | None = None
        self._pods_error = ""
        self._pods_for: tuple[tuple[str, tuple[str, ...]], ...] | None = None
        self._pods_read_at = float("-inf")
        self.stop = threading.Event()
        self.latency = netem.detect()
        # Without netem a Latency order is refused with the reason, nothing made; with it,
        # tc makes it (tcrules.py), and every tc call below happens only then.
        self.latency_unsupported = None if self.latency.available else self.latency.why
        self.tag = tcrules.netem_tag(self.base)  # the netem leaf's handle: whose root it is
        self._delay: tcrules.Delay | None = None  # the Latency the kernel holds
        self._delay_failed: tuple[tcrules.Delay, tc.Outcome] | None = None  # not retried
        self._delay_dirty = False  # a removal failed: swept again each tick
        # The rules the kernel took last (with their expiries: a renewal re-applies).
        self._applied: tuple[rules.Rule, ...] | None = None
        self._error: str = ""  # why the last apply failed
        # Orders the kernel refused on their own when the whole transaction failed: key ->
        # nft's reason (the others were applied without them).
        self._refused_by_kernel: dict[str, str] = {}
        self._next_expiry: datetime | None = None  # the earliest expiry of a held order

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        log.info(
            "agent for node %s (address %s, chains %s_*): netem %s",
            self.node,
            self.node_ip,
            self.base,
            "available" if self.latency.available else f"unavailable ({self.latency.why})",
        )
        self.cleanup_at_start()
        self.cache.start()
        self.node_watch.start()
        while not self.stop.is_set():
            soonest = min(
                (t for t in (self._next_expiry, self._node_due) if t is not None), default=None
            )
            self.cache.changed.wait(decide.wait_seconds(soonest, _now(), TICK_S))
            self.cache.changed.clear()
            try:
                latest = self.node_watch.latest()
                self._node_due, patched = nodereaper.reap(self.core, latest, _now())
                if patched is not latest:
                    self.node_watch.offer(patched)
            except Exception as exc:  # the orders' part must go on
                log.exception("node faults: %s", exc)
            if self.cache.synced.is_set():
                try:
                    self.tick(_now())
                except Exception as exc:  # one bad tick must not end the agent
                    log.exception("tick failed: %s", exc)
        self.cache.stop()
        self.node_watch.stop()
        self.remove_all()

    def cleanup_at_start(self) -> None:
        """Rules the kernel holds for this agent before it has seen any order: none of them
        is backed yet, so they go now (the first tick puts back the live ones)."""
        try:
            left = decide.stale(rules.owned_keys(nft.list_table(), self.base), ())
        except nft.NftError as exc:
            log.warning("cannot read table %s: %s", rules.TABLE, exc)
            left = set()
        if left:
            log.info("removing %d order(s) left in the kernel: %s", len(left), sorted(left))
        self.remove_all(half_made=True)

    def _script(self, held: tuple[rules.Rule, ...]) -> str:
        """The transaction that makes the kernel hold `held`, built now (set timeouts count
        from now), deleting this agent's sets that the kernel holds and `held` does not."""
        present = rules.owned_sets(nft.list_table(), self.base)
        return rules.script(self.base, self.node_ip, held, _now(), present)

    def remove_all(self, half_made: bool = False) -> None:
        try:
            nft.apply(self._script(()))
            self._applied = None
        except nft.NftError as exc:
            log.error("could not remove this agent's chains: %s", exc)
        if self.latency.available:
            self._remove_delay(half_made)

    def _remove_delay(self, half_made: bool = False) -> None:
        """Every root qdisc of this agent (none is backed once its order is dropped)."""
        try:
            gone = tc.sweep(self.tag, set(), half_made)
            self._delay, self._delay_dirty = None, False
            if gone:
                log.info("removed the delay (%s) from %s", tcrules.HANDLE, ", ".join(gone))
        except tc.TcError as exc:
            self._delay_dirty = True
            log.error("could not remove this agent's delay: %s", exc)

    def _sync_delay(self, want: tcrules.Delay | None) -> None:
        """Make the kernel hold `want` (one Latency order) or none; a failed attempt is
        reported and not retried for the same order (the operator deletes it)."""
        if want == self._delay and not self._delay_dirty:
            return
        if self._delay is not None or self._delay_dirty:
            self._remove_delay()
            if self._delay_dirty:
                return  # the old one is still there: nothing new on top of it
        if want is None or (self._delay_failed and self._delay_failed[0] == want):
            return
        outcome = tc.make(want, self.tag)
        if outcome.state == "Applied":
            self._delay, self._delay_failed = want, None
            log.info(
                "delay %d ms for %s on %s",
                want.delay_ms,
                ", ".join(want.ips),
                ", ".join(outcome.devices),
            )
        else:
            self._delay_failed = (want, outcome)
            log.error("Latency %s: %s: %s", want.key, outcome.state, outcome.message)

    def tick(self, now: datetime) -> None:
        orders: list[Order] = []
        for obj in self.cache.objects():
            parsed = parse(obj)
            if isinstance(parsed, Order):
                orders.append(parsed)
            elif self.node in ((obj.get("spec") or {}).get("nodes") or []):
                self._report_raw(obj, "Error", parsed)
        holding = self._delay.key if self._delay else None
        checks = self._check_targets(orders)
        messages = {key: message for key, (message, _) in checks.items()}
        want = decide.desired(
            orders, self.node, now, self.latency_unsupported, holding, refused_by_check=messages
        )
        self._next_expiry = decide.next_expiry(orders, want)
        if want.rules != self._applied:
            self._apply(want.rules)
        if self.latency.available:
            self._sync_delay(want.delay)
        self._report(orders, want, now, checks)

    # -- targets -------------------------------------------------------------------------

    def _check_targets(self, orders: list[Order]) -> dict[str, tuple[str, dict[str, str]]]:
        """Order key -> (why, per target) for the orders whose targets this agent refuses."""
        live = [o for o in orders if not o.deleting and o.spec.targets_on(self.node)]
        if not live:
            self._pods_for = None
            return {}
        fingerprint = tuple(
            sorted((o.key, tuple(t.ip for t in o.spec.targets_on(self.node))) for o in live)
        )
        if fingerprint != self._pods_for or time.monotonic() - self._pods_read_at >= (
            POD_REFRESH_S
        ):
            self._read_pods()
            self._pods_for = fingerprint
        out: dict[str, tuple[str, dict[str, str]]] = {}
        for order in live:
            if self._pods is None:
                why = (
                    f"cannot check the targets against the pods of node {self.node} "
                    f"({self._pods_error}); nothing applied"
                )
                out[order.key] = (why, {})
                continue
            refused = decide.refused_targets(order, self.node, self.node_ip, self._pods)
            if refused:
                out[order.key] = (decide.refusal_message(refused), refused)
        return out

    def _read_pods(self) -> None:
        self._pods_read_at = time.monotonic()
        try:
            listing = self.core.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={self.node}", _request_timeout=PATCH_TIMEOUT
            )
        except Exception as exc:
            self._pods, self._pods_error = None, str(getattr(exc, "reason", None) or exc)[:300]
            log.warning("cannot list the pods of node %s: %s", self.node, self._pods_error)
            return
        facts = (pod_facts(pod) for pod in listing.items)
        self._pods = [f for f in facts if f is not None]

    def _apply(self, held: tuple[rules.Rule, ...]) -> None:
        """One transaction of every held rule; when the kernel refuses it, the orders it
        refuses on their own are left out and the others applied."""
        try:
            nft.apply(self._script(held))
            self._applied, self._error, self._refused_by_kernel = held, "", {}
            log.info("chains now hold %d order(s)", len(held))
            return
        except nft.NftError as exc:
            self._error = str(exc)
            log.error("%s", exc)
        if len(held) < 2:
            self._refused_by_kernel = {}
            return
        try:
            good, bad = decide.isolate(held, lambda some: nft.refusal(self._script(some)))
            nft.apply(self._script(good))
        except nft.NftError as exc:
            self._error = str(exc)
            log.error("without the orders the kernel refuses: %s", exc)
            return
        # What counts as applied stays the whole set: retried only when the orders change.
        self._applied, self._error, self._refused_by_kernel = held, "", bad
        for key, why in bad.items():
            log.error("order %s refused by the kernel, the others applied: %s", key, why)

    # -- reports -------------------------------------------------------------------------

    def _report(
        self,
        orders: list[Order],
        want: decide.Desired,
        now: datetime,
        checks: dict[str, tuple[str, dict[str, str]]],
    ) -> None:
        held = {r.key: r for r in want.rules}
        in_kernel = {r.key for r in self._applied or ()}
        for order in orders:
            if order.deleting or not order.spec.targets_on(self.node):
                continue
            current = order.status.nodes.get(self.node)
            if want.delay is not None and order.key == want.delay.key:
                failed = self._delay_failed
                if failed is not None and failed[0] == want.delay:
                    unsupported = failed[1].state == "Unsupported"
                    state: NodeState = "Unsupported" if unsupported else "Error"
                    self._write(order, current, state, failed[1].message, [], now)
                elif self._delay == want.delay:
                    self._write(order, current, "Applied", "", list(want.delay.ips), now)
                elif self._delay_dirty:
                    why = "an earlier delay of this agent could not be removed yet (tc)"
                    self._write(order, current, "Error", why, [], now)
            elif order.key in self._refused_by_kernel:
                why = f"the kernel refused this order's rules: {self._refused_by_kernel[order.key]}"
                self._write(order, current, "Error", why, [], now)
            elif order.key in held:
                ips = list(held[order.key].ips)
                if self._error:
                    self._write(order, current, "Error", self._error, ips, now)
                else:
                    self._write(order, current, "Applied", "", ips, now)
            elif order.key in want.refused:
                refused = checks.get(order.key, ("", {}))[1]
                self._write(order, current, "Error", want.refused[order.key], [], now, refused)
            elif order.key in want.unsupported:
                self._write(order, current, "Unsupported", want.unsupported[order.key], [], now)
            elif (
                order.key in want.expired
                and current is not None
                and current.state != "Removed"
                and self._gone_from_kernel(order.key, in_kernel)
            ):
                # Also how a drill's undo ends an order: expiresAt set to now, then it waits
                # for every node's Removed before deleting the order.
                self._write(order, current, "Removed", "expired: the agent removed it", [], now)

    def _gone_from_kernel(self, key: str, in_kernel: set[str]) -> bool:
        """This order's rules are out of the kernel: the last transaction left them out."""
        if key in in_kernel:
            return False
        return self._delay is None or self._delay.key != key

    def _write(
        self,
        order: Order,
        current: NodeReport | None,
        state: NodeState,
        message: str,
        targets: list[str],
        now: datetime,
        refused: dict[str, str] | None = None,
    ) -> None:
        if not decide.report_needed(current, state, message, targets):
            return
        report = NodeReport(
            state=state,
            message=message[:1024],
            targets=targets,
            refused={ip: why[:256] for ip, why in (refused or {}).items()},
            applied_at=now if state == "Applied" else (current.applied_at if current else None),
            removed_at=now if state == "Removed" else None,
            updated_at=now,
            agent=self.pod,
        )
        document = report.model_dump(mode="json", by_alias=True)
        # A merge patch merges maps: addresses no longer refused are removed by name.
        stale = set(current.refused) - set(report.refused) if current is not None else set()
        document["refused"] = {**document["refused"], **dict.fromkeys(stale)}
        body = {"status": {"nodes": {self.node: document}}}
        self._patch(order.namespace, order.name, body)
        # The cache sees the new status on the watch; until then, do not write it twice.
        order.status.nodes[self.node] = report

    def _report_raw(self, obj: dict[str, Any], state: NodeState, message: str) -> None:
        meta = obj["metadata"]
        current = ((obj.get("status") or {}).get("nodes") or {}).get(self.node) or {}
        if current.get("state") == state and current.get("message") == message:
            return
        report = NodeReport(state=state, message=message[:1024], updated_at=_now(), agent=self.pod)
        body = {"status": {"nodes": {self.node: report.model_dump(mode="json", by_alias=True)}}}
        self._patch(meta["namespace"], meta["name"], body)

    def _patch(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        try:
            self.api.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body,
                _content_type="application/merge-patch+json",
                _request_timeout=PATCH_TIMEOUT,
            )
        except client.ApiException as exc:
            if exc.status != 404:  # deleted meanwhile: nothing to report on
                log.warning("status of %s/%s: %s", namespace, name, exc.reason)
        except Exception as exc:
            log.warning("status of %s/%s: %s", namespace, name, exc)


def pod_facts(pod: client.V1Pod) -> decide.PodFacts | None:
    """What a target check needs of a pod on the node; None for a pod that has ended."""
    status, spec, meta = pod.status, pod.spec, pod.metadata
    if status is None or status.phase in ("Succeeded", "Failed"):
        return None
    ips = {i.ip for i in status.pod_ips or [] if i.ip} | (
        {status.pod_ip} if status.pod_ip else set()
    )
    return decide.PodFacts(
        namespace=meta.namespace,
        name=meta.name,
        ips=tuple(sorted(ips)),
        host_network=bool(spec.host_network) if spec is not None else False,
        labels=dict(meta.labels or {}),
    )


def _api(kubeconfig: str | None, context: str | None) -> client.CustomObjectsApi:
    if kubeconfig or context:
        return client.CustomObjectsApi(
            config.new_client_from_config(config_file=kubeconfig, context=context)
        )
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi()


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    node = args.node or os.environ.get("NODE_NAME", "")
    node_ip = args.node_ip or os.environ.get("NODE_IP", "")
    if not node or not node_ip:
        log.error(
            "the agent needs its node's name and address (--node/NODE_NAME, "
            "--node-ip/NODE_IP; the chart sets them from the downward API)"
        )
        return 2
    agent = Agent(
        _api(args.kubeconfig, args.context),
        node,
        node_ip,
        cluster=args.cluster or os.environ.get("MODELDR_AGENT_CLUSTER", "member"),
        pod=os.environ.get("POD_NAME", ""),
    )

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: removing this agent's rules and stopping", signum)
        agent.stop.set()
        agent.cache.changed.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.run()
    return 0
