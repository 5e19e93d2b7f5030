# Everything a fresh machine needs is installed by these targets; nothing by hand.
#   make local   install everything, then run the whole platform locally (no AWS account)
#   make test    install everything, then run the test suite (what CI runs)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup local demo test bench synth synth-prod lint deploy-dev system-packages clean

setup: $(VENV)/.installed node_modules/.installed system-packages

# Last, the project itself, editable and --no-deps (the pinned files are its dependencies): the
# operator commands of pyproject.toml's [project.scripts] land in .venv/bin and its packages import
# from any directory. -qq hides setuptools' notice that every editable build prints; errors still show.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -qq --disable-pip-version-check --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian packages: chromium for the browser end-to-end tests. Another apt/dpkg process (unattended
# upgrades, a second `make setup`) may hold apt's locks: wait for it, at most APT_LOCK_WAIT seconds,
# instead of failing. apt-get's own DPkg::Lock::Timeout covers dpkg's lock but not the lists lock
# that `apt-get update` takes, hence the loop (it retries only on a lock error).
APT_LOCK_WAIT ?= 300
APT_GET := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=$(APT_LOCK_WAIT)
system-packages:
	@command -v chromium >/dev/null 2>&1 || { \
	  apt_get() { \
	    local deadline=$$((SECONDS + $(APT_LOCK_WAIT))) out; \
	    until out=$$($(APT_GET) "$$@" 2>&1); do \
	      if ! grep -q "Could not get lock" <<<"$$out" || [ $$SECONDS -ge $$deadline ]; then echo "$$out" >&2; return 1; fi; \
	      echo "apt-get $$1: another apt/dpkg process holds the lock; waiting (at most $(APT_LOCK_WAIT) s)"; sleep 5; \
	    done; }; \
	  echo "installing Debian packages: chromium"; \
	  apt_get update -qq && apt_get install -y -qq --no-install-recommends chromium; }

local: setup
	$(PY) -m scripts.local --env dev

demo: setup
	$(PY) -m scripts.demo

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) -m scripts.bench

synth: setup
	npx cdk synth -c env=dev --quiet

synth-prod: setup
	npx cdk synth -c env=prod --quiet

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy app.py infrastructure lambdas scripts tunnel_agent

deploy-dev: setup
	npx cdk deploy --all -c env=dev

clean:
	rm -rf cdk.out cdk.out.* .pytest_cache .mypy_cache .ruff_cache
