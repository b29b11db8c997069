# modeldr — developer and CI entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
PIP_PIN   := pip==25.3
STAMP     := $(VENV)/.installed
TOOLS_ENV := eval "$$(bash scripts/tools.sh --print-env)"
CLUSTER   ?= primary

.PHONY: help install tools lint test test-unit test-integration sandbox-up sandbox-down \
        sandbox-status operator-up operator-down sandbox-outage sandbox-restore sandbox-fail-node sandbox-recover-node \
        kind-up kind-node-image kind-images kind-down kind-demo test-kind chart-lint bench bench-sandbox bench-serving bench-failover bench-drills bench-judging bench-backups clean demo crds

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv/ with modeldr installed editable, all extras and dev tools

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "$(PIP_PIN)"
	$(PY) -m pip install -q -c constraints.txt -e ".[serving]" --group dev
	@touch $@

demo: install tools ## The demo: a tiny BERT on primary and standby, a primary outage mid-traffic
	@$(TOOLS_ENV); $(PY) -m sandbox.demo

tools: ## Build/install the pinned sandbox tools into ~/.cache/modeldr (idempotent)
	@bash scripts/tools.sh

chart-lint: tools ## helm lint --strict the charts (operator, node agent)
	@$(TOOLS_ENV); $$MODELDR_HELM lint --strict charts/modeldr charts/modeldr-agent

crds: install ## Regenerate the CRDs made from the models (DrillPlan, DrillRun, NetworkFault)
	$(PY) scripts/gen_drill_crds.py
	$(PY) scripts/gen_agent_crd.py

lint: install ## ruff, mypy and the import-linter contracts (pyproject.toml [tool.importlinter])
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy -p modeldr -p sandbox -p kindtools -p tests -p bench
	$(VENV)/bin/lint-imports

test: install tools ## Unit and integration tests (brings the sandbox up, tears it down after)
	bash scripts/test.sh

test-unit: install tools ## Unit tests only (nothing running needed; helm from `make tools`)
	$(PY) -m pytest -m "not integration and not serving" tests/unit

test-integration: install tools ## Integration tests on the sandbox (reuses a running one)
	$(PY) -m pytest -m integration tests/integration

sandbox-up: install tools ## Start hub, primary, standby, the process runtime and Prometheus
	@$(TOOLS_ENV); $(PY) -m sandbox up

sandbox-down: install ## Stop the sandbox and remove its state
	@$(TOOLS_ENV); $(PY) -m sandbox down

operator-up: install tools ## Install the chart in the hub and start the operator (chart ServiceAccount; log .sandbox/logs/operator.log)
	@$(TOOLS_ENV); $(PY) -m sandbox operator-up

operator-down: install ## Stop the operator started by operator-up
	@$(TOOLS_ENV); $(PY) -m sandbox operator-down

sandbox-status: install ## Show the sandbox's clusters, nodes and processes
	@$(TOOLS_ENV); $(PY) -m sandbox status

sandbox-outage: install ## Whole-cluster outage: make sandbox-outage CLUSTER=primary
	@$(TOOLS_ENV); $(PY) -m sandbox outage $(CLUSTER)

sandbox-restore: install ## Undo an outage: make sandbox-restore CLUSTER=primary
	@$(TOOLS_ENV); $(PY) -m sandbox restore $(CLUSTER)

sandbox-fail-node: install ## Fail a node: make sandbox-fail-node CLUSTER=primary NODE=gpu-0
	@$(TOOLS_ENV); $(PY) -m sandbox fail-node $(CLUSTER) $(NODE)

sandbox-recover-node: install ## Recover a node: make sandbox-recover-node CLUSTER=primary NODE=gpu-0
	@$(TOOLS_ENV); $(PY) -m sandbox recover-node $(CLUSTER) $(NODE)

bench: bench-sandbox bench-serving bench-failover bench-drills bench-judging bench-backups ## All benchmarks; figures printed and saved under bench/results/

bench-sandbox: install tools ## Sandbox up time (cold, warm) and idle memory -> bench/results/sandbox.json
	@$(TOOLS_ENV); $(PY) -m bench.sandbox_bench

bench-failover: install tools ## Failover RTO (hot, warm) and 200 ModelDeployments -> bench/results/failover.json
	@$(TOOLS_ENV); $(PY) -m bench.failover_bench

bench-drills: install tools ## Example drill wall time, abort latency, probe cost at 50/s -> bench/results/drills.json
	@$(TOOLS_ENV); $(PY) -m bench.drills_bench

bench-judging: install ## What judging the probe's answers costs, per answer and per step -> bench/results/judging.json
	$(PY) -m bench.judging_bench

bench-backups: install tools ## Backup and restore throughput, full/incremental/differential bytes (sandbox up) -> bench/results/backups.json
	@$(TOOLS_ENV); $(PY) -m bench.backup_bench

bench-serving: install ## Model server vs a naive baseline on CPU -> bench/results/serving.json
	$(PY) bench/serving_bench.py

kind-up: ## kind clusters hub, primary and standby (a user's Docker, else the project's own engine and offline node image)
	bash scripts/kind.sh up

kind-node-image: ## the kind node image built offline (scripts/kind-node-image.sh; starts the project's Docker engine)
	bash scripts/kind-docker.sh start
	bash scripts/kind-node-image.sh

kind-images: ## the operator/agent and CPU serving images for kind (a user's Docker: the Dockerfiles; else offline on the project's engine)
	bash scripts/kind-images.sh

kind-demo: ## the example drills on kind (a user's Docker, else the project's engine): images, charts, modeldr drill run --wait --junit --report -> .kind/results
	bash scripts/kind-demo.sh

test-kind: install ## what .ci/run runs on kind: the kind provider's container tests, both kind drills, then kind-down
	bash scripts/test-kind.sh

kind-down: ## delete the kind clusters (and stop the project's own Docker engine if it ran them)
	bash scripts/kind.sh down

clean: sandbox-down ## Remove the sandbox state and the virtualenv
	rm -rf $(VENV) .sandbox .mypy_cache .ruff_cache .pytest_cache
