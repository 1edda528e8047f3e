# ReviewBot — every README command is a target here.
SHELL := /bin/bash
.DEFAULT_GOAL := help
API_PY := .venv/bin/python
RASA_PY := .venv-rasa/bin/python
USER ?= alice
ROLE ?= client

.PHONY: help setup train image-model migrate run test test-api test-actions test-stories test-nlu validate lint token bench bench-whatsapp nlu-report clean browser export-reviewed

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# Runtime and development pins together: the image installs only the runtime lock (docker/api.Dockerfile).
.venv/.installed: requirements/api-runtime.lock requirements/api-dev.lock
	@py=$$(scripts/find-python.sh 3.11) && rm -rf .venv && "$$py" -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -r requirements/api-runtime.lock -r requirements/api-dev.lock
	touch $@

.venv-rasa/.installed: requirements/rasa.lock
	@py=$$(scripts/find-python.sh 3.10) && rm -rf .venv-rasa && "$$py" -m venv .venv-rasa
	.venv-rasa/bin/pip install -q -r requirements/rasa.lock
	touch $@

setup: .venv/.installed .venv-rasa/.installed ## create both environments (API 3.11, Rasa 3.10)

train: .venv-rasa/.installed ## train the Rasa model if its inputs changed
	@$(RASA_PY) scripts/sync_nlu_lookups.py
	@scripts/train-model.sh >/dev/null

image-model: ## print the model file the Rasa image carries (its build arg MODEL); fails if `make train` has not made it
	@model=$$(scripts/model-name.sh) && { [ -f "$$model" ] || { echo "$$model is missing: run make train" >&2; exit 1; }; } \
	  && echo "$$model"

migrate: .venv/.installed ## apply database migrations to DATABASE_URL
	.venv/bin/alembic upgrade heads

backup: .venv/.installed ## back up the API's and the tracker's databases into BACKUP_DIR (default backups/)
	$(API_PY) scripts/backup.py backup

restore: .venv/.installed ## restore a backup with the stack stopped: make restore BACKUP=backups/reviewbot-….tar
	$(API_PY) scripts/backup.py restore "$(BACKUP)"

run: setup train migrate ## set up and start Rasa (:5005), actions (:5055) and the API (:8000)
	scripts/run-stack.sh

validate: .venv-rasa/.installed ## check the Rasa training data
	$(RASA_PY) scripts/sync_nlu_lookups.py --check
	PYTHONPATH=. RASA_TELEMETRY_ENABLED=false .venv-rasa/bin/rasa data validate --config config.yml --domain domain.yml \
	  --data rasa_project/data --fail-on-warnings

export-reviewed: .venv/.installed ## write the reviewed customer messages as Rasa NLU data (rasa_project/data/nlu/reviewed.yml)
	$(API_PY) -m conversation_api.review export

test-actions: .venv-rasa/.installed ## action, adapter and tracker/lock store tests (Rasa's Python)
	PYTHONPATH=. .venv-rasa/bin/python -m pytest -q --confcutdir=tests/actions tests/actions
	PYTHONPATH=. .venv-rasa/bin/python -m pytest -q --confcutdir=tests/bot tests/bot

test-stories: train ## run the Rasa test stories (every workflow) against the trained model
	@scripts/test-stories.sh

test-nlu: train ## score the model on the held-out NLU sets (tests/nlu); fails below the thresholds
	@scripts/test-nlu.sh

nlu-report: train ## NLU cross-validation (5 folds): intent accuracy and entity F1 into results/nlu-cv
	@scripts/nlu-report.sh

CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser: ## headless Chromium for the console's browser test (Debian packages, installed once)
	@[ -x "$(CHROMIUM)" ] || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver; }

test-api: setup train browser ## API, connector, integration and end-to-end tests (Python 3.11)
	.venv/bin/python -m pytest -q tests --ignore=tests/actions --ignore=tests/bot

test: setup train validate test-actions test-stories test-nlu test-api ## everything: set-up, data validation and all tests

lint: .venv/.installed ## ruff and mypy
	.venv/bin/ruff check conversation_api connectors tests benchmarks
	.venv/bin/mypy conversation_api

token: .venv/.installed ## mint a dev token: make token USER=alice ROLE=client|csr|admin
	@.venv/bin/python -m conversation_api.tokens --user "$(USER)" --role "$(ROLE)"

bench: setup train ## throughput and latency of the API and of Rasa (PostgreSQL)
	.venv/bin/python benchmarks/bench_messages.py

bench-whatsapp: setup train ## WhatsApp webhook ack p50/p99 and end-to-end reply latency (PostgreSQL)
	.venv/bin/python benchmarks/bench_whatsapp.py

clean: ## remove environments, models and the local database
	rm -rf .venv .venv-rasa models reviewbot.db*
