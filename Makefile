# RetroVue: `make run` brings everything up with a demo channel; `make test` runs the suite.
SHELL := /bin/bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export REDIS_URL ?= redis://127.0.0.1:6379/0
export RETROVUE_DATA_DIR ?= $(CURDIR)/var

.PHONY: run test install system-deps migrate

# make run is a development server on this machine: DEBUG on, and it says so.
run: export DJANGO_DEBUG ?= 1
run: install
	@echo "make run: DJANGO_DEBUG=$$DJANGO_DEBUG (development; production runs with DEBUG off and its own DJANGO_SECRET_KEY)"
	mkdir -p "$(RETROVUE_DATA_DIR)"
	python manage.py migrate --noinput -v0
	scripts/ensure-redis
	honcho -f Procfile start

# The worker and failover tests run again with RabbitMQ as the broker: Celery users pick either.
test: install
	scripts/ensure-redis
	lint-imports
	# What reads no timing off a live channel, spread over the cores; then, one at a time, the
	# tests that air channels in real time and measure them (tests/conftest.py marks them).
	pytest -n auto -m "not real_time"
	pytest -m real_time
	# The broker's part again on RabbitMQ: workers taking, losing and handing over channels.
	RETROVUE_TEST_BROKER=rabbitmq pytest tests/test_workers.py

install: system-deps $(VENV)/.installed

system-deps:
	@scripts/install-system-deps

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@
