"""`python -m sandbox COMMAND`: the Makefile's sandbox targets."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from sandbox.api import Sandbox, SandboxError
from sandbox.config import ToolMissingError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start hub, primary, standby, the process runtime and Prometheus")
    sub.add_parser("down", help="stop everything and remove the sandbox state")
    sub.add_parser("status", help="print the state of each part as JSON")
    sub.add_parser(
        "runtime", help="run the process runtime in the foreground (sandbox-up starts it)"
    )
    sub.add_parser(
        "infra-webhook",
        help="run the infrastructure webhook (NodeFailure, ClusterOutage) in the foreground "
        "(operator-up starts it)",
    )
    sub.add_parser("operator-up", help="install the chart in the hub and start the operator")
    sub.add_parser("operator-down", help="stop the operator")
    for name in ("outage", "restore"):
        sub.add_parser(name).add_argument("cluster")
    for name in ("fail-node", "recover-node"):
        p = sub.add_parser(name)
        p.add_argument("cluster")
        p.add_argument("node")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("kubernetes").setLevel(logging.WARNING)

    if args.command == "runtime":
        from sandbox import runtime

        runtime.main()
        return 0
    if args.command == "infra-webhook":
        from sandbox import infra_webhook

        infra_webhook.main()
        return 0
    if args.command in ("operator-up", "operator-down"):
        from sandbox import operator_up

        try:
            if args.command == "operator-up":
                operator_up.operator_up()
            else:
                operator_up.operator_down()
        except (RuntimeError, TimeoutError, ToolMissingError) as exc:
            print(f"sandbox {args.command}: {exc}", file=sys.stderr)
            return 1
        return 0
    sandbox = Sandbox()
    try:
        if args.command == "up":
            sandbox.up()
        elif args.command == "down":
            sandbox.down()
        elif args.command == "status":
            print(json.dumps(sandbox.status(), indent=2))
        elif args.command == "outage":
            sandbox.outage(args.cluster)
        elif args.command == "restore":
            sandbox.restore(args.cluster)
        elif args.command == "fail-node":
            sandbox.fail_node(args.cluster, args.node)
        elif args.command == "recover-node":
            sandbox.recover_node(args.cluster, args.node)
    except (SandboxError, ToolMissingError, TimeoutError, RuntimeError) as exc:
        print(f"sandbox {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
