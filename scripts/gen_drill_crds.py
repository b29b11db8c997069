"""Write the DrillPlan, DrillRun and TenantPolicy CRDs (crds/modeldr.io_drillplans.yaml,
_drillruns.yaml, _tenantpolicies.yaml)
from their models and the fault drivers (modeldr/drills/crds.py); this is the command line.

    .venv/bin/python scripts/gen_drill_crds.py           # (re)write every file
    .venv/bin/python scripts/gen_drill_crds.py --check   # exit 1 if they are out of date
"""

import sys
from pathlib import Path

from modeldr.drills.crds import HUB_CRDS
from modeldr.kube.crds import write_or_check

if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    sys.exit(write_or_check(root, HUB_CRDS, "scripts/gen_drill_crds.py", sys.argv[1:]))
