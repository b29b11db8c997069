"""The `modeldr` command."""

from __future__ import annotations

import argparse
import sys

from modeldr import __version__


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] in (["drill"], ["rollout"], ["backup"]):
        # The drill client (typer, rich) has its own parser and exit codes (DRILLS.md).
        from modeldr.client.app import main as client_main

        return client_main(args_in)
    parser = argparse.ArgumentParser(prog="modeldr", description=__doc__)
    parser.add_argument("--version", action="version", version=f"modeldr {__version__}")
    commands = parser.add_subparsers(dest="command")
    operator = commands.add_parser(
        "operator",
        help="run the operator against a hub cluster",
        description="Run the modeldr operator (kopf) against a hub cluster. Settings come from "
        "MODELDR_* environment variables (charts/modeldr/README.md).",
    )
    operator.add_argument(
        "--kubeconfig",
        help="kubeconfig of the hub (default: in-cluster, then $KUBECONFIG / ~/.kube/config)",
    )
    operator.add_argument("--context", help="kubeconfig context of the hub")
    operator.add_argument(
        "--namespace", action="append", help="watch only this namespace (repeatable; default: all)"
    )
    operator.add_argument("--verbose", action="store_true", help="debug logging")
    commands.add_parser(
        "drill",
        help="run DrillPlans and follow them, reports, status, abort (modeldr drill --help)",
        add_help=False,
    )
    commands.add_parser(
        "rollout",
        help="a ModelDeployment's verified model rollout: status, promote, abort",
        add_help=False,
    )
    commands.add_parser(
        "backup",
        help="model backups between object stores: run, list, restore, mirror",
        add_help=False,
    )
    agent = commands.add_parser(
        "agent",
        help="run the node agent (network faults) on a member cluster's node",
        description="Run the modeldr node agent: applies the NetworkFaults for pods on its "
        "node as nftables rules (docs/agent.md). Runs as the modeldr-agent chart's DaemonSet.",
    )
    agent.add_argument("--kubeconfig", help="kubeconfig of the member (default: in-cluster)")
    agent.add_argument("--context", help="kubeconfig context of the member")
    agent.add_argument("--node", help="this node's name (default: $NODE_NAME)")
    agent.add_argument("--node-ip", help="this node's address (default: $NODE_IP)")
    agent.add_argument(
        "--cluster",
        help="the member cluster's name, for chain names (default: "
        "$MODELDR_AGENT_CLUSTER or 'member')",
    )
    agent.add_argument("--verbose", action="store_true", help="debug logging")
    from modeldr.kube import memberidentity

    memberidentity.add_parser(commands)
    args = parser.parse_args(args_in)
    if args.command == "member-kubeconfig":
        return memberidentity.main(args)
    if args.command == "agent":
        from modeldr.agent.main import main as agent_main

        return agent_main(args)
    if args.command == "operator":
        from modeldr.operator.main import main as operator_main

        return operator_main(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
