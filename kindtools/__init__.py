"""Tooling for the kind clusters (`kind/*.yaml`, scripts/kind*.sh): the kind infrastructure
provider (`python -m kindtools.infra`: NodeFailure and ClusterOutage on the project's Docker
engine) and the offline rendering of kind's configs (`python -m kindtools.offline`). A test
harness like `sandbox/`, never part of the product."""
