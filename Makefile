# Orthanc Anonymizer. On a fresh Debian bookworm machine, as root:
#   make run    Orthanc with the plugin on http://localhost:8042 (DICOM 4242), data under ./data
#   make test   every test (unit + integration + browser)
SHELL := /bin/bash
PY := /usr/bin/python3
VENV := .venv
APT_PACKAGES := orthanc orthanc-python dcmtk dicom3tools python3-venv python3-dev tesseract-ocr tesseract-ocr-eng \
  chromium chromium-driver postgresql orthanc-postgresql
export ORTHANC_HTTP_PORT ?= 8042
export ORTHANC_DICOM_PORT ?= 4242
export ORTHANC_DATA ?= $(CURDIR)/data

.PHONY: run test unit integration browser lint bench soak apt venv clean test-repeat

apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml | apt
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

run: venv
	mkdir -p "$(ORTHANC_DATA)"
	exec $(VENV)/bin/python -m orthanc_anonymizer.server.launch run

lint: venv
	$(VENV)/bin/ruff check plugin stubs tests bench tools
	$(VENV)/bin/ruff format --check plugin stubs tests bench tools
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest -q tests/unit

integration: venv
	$(VENV)/bin/pytest -q tests/integration

# Orthanc Explorer in Debian's headless Chromium (Playwright drives /usr/bin/chromium; no browser is downloaded).
browser: venv
	$(VENV)/bin/pytest -q tests/browser

test: venv lint
	$(VENV)/bin/pytest -q tests

# For a suspected flake: the integration suite N times in a row (default 5), stopping at the first failure, e.g.
#   make test-repeat N=10            make test-repeat N=3 TESTS=tests/integration/test_ingest.py
N ?= 5
TESTS ?= tests/integration
test-repeat: venv
	@for run in $$(seq 1 $(N)); do \
	  echo "== test-repeat: run $$run of $(N): $(TESTS)"; \
	  $(VENV)/bin/pytest -q -p no:cacheprovider $(TESTS) || { echo "== test-repeat: run $$run of $(N) failed"; exit 1; }; \
	done; echo "== test-repeat: $(N) of $(N) runs passed"

# The same tests on the newer Orthancs, each in a debootstrap root under .compat/ (tools/compat/README.md): Debian
# trixie's Orthanc 1.12.7 with orthanc-python 5.0 (Python 3.13), and Debian forky's Orthanc 1.13.0 with
# orthanc-python 7.1 (Python 3.14). Per root: the unit tests inside it on its Python; the integration, browser and
# harness tests here, starting its Orthanc through ORTHANC_COMMAND. `make test-compat` runs both roots;
# `make test-compat-trixie` / `make test-compat-forky` one.
COMPAT_SUITES := trixie forky
.PHONY: compat-root compat-venv test-compat $(foreach s,$(COMPAT_SUITES),compat-root-$(s) compat-venv-$(s) test-compat-$(s))

compat-root: $(foreach s,$(COMPAT_SUITES),compat-root-$(s))
compat-venv: $(foreach s,$(COMPAT_SUITES),compat-venv-$(s))
test-compat: $(foreach s,$(COMPAT_SUITES),test-compat-$(s))

$(COMPAT_SUITES:%=compat-root-%): compat-root-%:
	COMPAT_SUITE=$* tools/compat/build-root.sh

$(COMPAT_SUITES:%=compat-venv-%): compat-venv-%: compat-root-%
	COMPAT_SUITE=$* tools/compat/build-venv.sh

$(COMPAT_SUITES:%=test-compat-%): test-compat-%: venv compat-venv-%
	tools/compat/run-in-$*.sh .venv/bin/pytest -q -p no:cacheprovider tests/unit
	COMPAT_SUITE=$* ORTHANC_COMMAND="$(CURDIR)/tools/compat/run-in-$*.sh /usr/sbin/Orthanc" $(VENV)/bin/pytest -q tests/integration tests/browser tests/compat

# Orthanc Explorer 2 1.14.1 for tests/browser/test_oe2.py on forky's Orthanc 1.13: built from
# ../shared/third_party/orthanc-explorer-2-1.14.1.tar.gz in a forky root of its own, cached per machine
# (tools/compat/build-oe2.sh).
.PHONY: oe2
oe2:
	tools/compat/build-oe2.sh

test-compat-forky: oe2

# Installs the bench extra (matplotlib, for the plot) into .venv, and dicognito into .bench-venv/ (bench/run.py);
# writes bench/RESULTS.md and bench/time-per-instance.png.
$(VENV)/.bench-installed: pyproject.toml $(VENV)/.installed
	$(VENV)/bin/pip install -q -e '.[dev,bench]'
	touch $@

# The package's bytecode compiled first, as pip compiles an installed package's: the editable install has none, and
# with PYTHONDONTWRITEBYTECODE set every CLI run and worker process would compile the sources again (~25 ms each).
bench: venv $(VENV)/.bench-installed
	$(VENV)/bin/python -m compileall -q plugin
	$(VENV)/bin/python -m bench.run

# Long fuzz runs, never part of make test: the engine's input, profile files and the REST routes' bodies (a real Orthanc).
soak: venv
	HYPOTHESIS_PROFILE=long $(VENV)/bin/pytest -q tests/unit/test_engine_hostile_input.py tests/unit/test_planted_everywhere.py \
	  tests/unit/test_profile_files_fuzz.py tests/integration/test_fuzz_route_bodies.py

standard: venv
	$(VENV)/bin/python tools/generate_standard.py ../shared

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
