# Everything a developer or CI needs, from a fresh machine. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PACKAGES := $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
UV_VERSION := 0.13.9
INFRA := python3 infra/localinfra.py

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): requirements/requirements.lock $(PACKAGES)
	@test -x $(PY) || python3 -m venv $(VENV)
	@test -x $(VENV)/bin/uv || $(VENV)/bin/pip install -q uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install -q --python $(PY) --require-hashes -r requirements/requirements.lock
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps --no-build-isolation $(foreach p,$(PACKAGES),-e $(dir $(p)))
	@touch $@

.PHONY: install
install: $(STAMP) ## create .venv with the locked dependencies and the workspace packages

.PHONY: lock
lock: install ## re-pin third-party dependencies with hashes (no index URL recorded); images get runtime.lock
	$(VENV)/bin/uv pip compile --generate-hashes --python-version 3.11 --no-header requirements/requirements.in -o requirements/requirements.lock
	$(VENV)/bin/uv pip compile --generate-hashes --python-version 3.11 --no-header requirements/runtime.in -c requirements/requirements.lock -o requirements/runtime.lock

.PHONY: infra-up
infra-up: install ## start Kafka (KRaft), PostgreSQL and Redis on loopback and create the topics
	@$(INFRA) up
	@$(PY) -m servicekit.topics

.PHONY: infra-down
infra-down: ## stop the local Kafka, PostgreSQL and Redis
	@$(INFRA) down

.PHONY: infra-status
infra-status: ## show which local servers are up
	@$(INFRA) status

.PHONY: up
up: infra-up ## bring the whole system up and print the widget demo and dashboard URLs
	@$(PY) -m devkit.stack up

.PHONY: down
down: ## stop the services and the infrastructure
	@-$(PY) -m devkit.stack down
	@$(INFRA) down

.PHONY: test
test: infra-up ## lint, then every test against real Kafka, PostgreSQL, Redis and Chromium
	@$(MAKE) --no-print-directory lint
	@$(INFRA) browser
	@$(INFRA) promtool
	$(PY) -m pytest

.PHONY: lint
lint: install ## ruff and mypy (strict on libs)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy libs/contracts/src libs/servicekit/src libs/devkit/src $(wildcard services/*/src)

.PHONY: contracts
contracts: install ## export JSON Schema for every event and the AsyncAPI document
	$(PY) -m contracts.export docs/contracts

.PHONY: eval
eval: install ## evaluate the AI assistant on its question set (fails below its thresholds)
	$(PY) -m ai_responder.evaluate

.PHONY: bench
bench: install ## end-to-end benchmark: turns/s and latency, 10,000 idle sockets (see bench/README.md)
	$(PY) -m bench

.PHONY: bench-batch
bench-batch: install ## CPU of one consumer batch of one event in a minimal service (see bench/README.md)
	$(PY) -m bench.batch_cost
