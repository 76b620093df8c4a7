# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Both create the virtual environment at .venv on first use and reuse it afterwards.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint system-deps

# Programs the tests drive for real (a browser for the live page and the report, Prometheus
# with promtool, Alertmanager with amtool). On Debian as root they are installed when missing;
# elsewhere a clear message names them, and the tests that need them fail (not skip) under CI.
SYSTEM_PACKAGES := chromium prometheus prometheus-alertmanager openssl
# (openssl makes the certificates of the TLS tests of `driftline alerts forward`.)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "driftline needs Python 3.11 or newer")'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[broker,dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/driftline demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "make: the tests need these Debian packages (or the same programs on PATH):$$missing" >&2; \
		echo "      install them as root with: apt-get install$$missing" >&2; \
	fi

test: lint system-deps
	$(VENV)/bin/python -m pytest
