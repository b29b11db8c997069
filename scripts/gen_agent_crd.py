"""Write the node agent's NetworkFault CRD (charts/modeldr-agent/crds/) from its models
(modeldr.api.networkfault): modeldr/kube/crds.py does the work, this is its command line.

    .venv/bin/python scripts/gen_agent_crd.py           # (re)write it
    .venv/bin/python scripts/gen_agent_crd.py --check   # exit 1 if it is out of date
"""

import sys
from pathlib import Path

from modeldr.kube.crds import AGENT_CRDS, write_or_check

if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    sys.exit(write_or_check(root, AGENT_CRDS, "scripts/gen_agent_crd.py", sys.argv[1:]))
