# The two commands: `make demo` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test install install-test bench clean system-deps

# Debian/Ubuntu packages: venv support for the demo; Mosquitto, Chromium, a Chinese font, coturn (the
# TURN relay) and ip/iptables (the tests' network namespaces) for the tests.
system-deps:
	@missing=""; \
	$(PYTHON) -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	{ command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; } || missing="$$missing mosquitto"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing="$$missing fonts-wqy-microhei"; \
	{ command -v turnserver >/dev/null || [ -x /usr/bin/turnserver ]; } || missing="$$missing coturn"; \
	{ command -v iptables >/dev/null || [ -x /usr/sbin/iptables ]; } || missing="$$missing iptables"; \
	{ command -v ip >/dev/null || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ]; } || missing="$$missing iproute2"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

$(BIN)/python: | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[scenes]'

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

demo: system-deps install
	$(BIN)/xl-edge models install
	$(BIN)/python scripts/demo.py

# Two passes: most tests in $(JOBS) parallel workers, then the `serial` ones (timed against the
# wall clock, or loading the machine on purpose) alone. JUnit XML of each pass in artifacts/.
# Exit status 5 (nothing selected, e.g. PYTEST_ARGS names one file) counts as a pass.
JOBS ?= 3
test: system-deps install-test
	$(BIN)/xl-edge models install
	@mkdir -p artifacts
	@$(BIN)/python -m pytest -n $(JOBS) -m "not serial" --junitxml=artifacts/junit-parallel.xml \
	  $(PYTEST_ARGS); a=$$?; [ $$a -eq 5 ] && a=0; \
	$(BIN)/python -m pytest -m serial --junitxml=artifacts/junit-serial.xml $(PYTEST_ARGS); b=$$?; \
	[ $$b -eq 5 ] && b=0; \
	echo "parallel pass: exit $$a; serial pass: exit $$b"; [ $$a -eq 0 ] && [ $$b -eq 0 ]

bench: install-test
	$(BIN)/python bench/sync_throughput.py

clean:
	rm -rf $(VENV) .demo .pytest_cache
