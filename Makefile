# The two commands a newcomer types: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed-dev
RUNSTAMP := $(VENV)/.installed

PLAIN := .venv-plain
PLAINSTAMP := $(PLAIN)/.installed

.PHONY: demo test lint fmt bench clean plain

$(PY):
	$(PYTHON) -m venv $(VENV)

$(RUNSTAMP): pyproject.toml constraints.txt | $(PY)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e .
	touch $@

$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $(RUNSTAMP) $@

# The plain package (no extras: no click, no server, no ONNX), as `pip install seqshape` gives it:
# its console script must print help and turn a usage error into one line and exit 2.
$(PLAINSTAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(PLAIN)
	$(PLAIN)/bin/python -m pip install -q -c constraints.txt torch==2.13.0
	$(PLAIN)/bin/python -m pip install -q -c constraints.txt .
	touch $@

plain: $(PLAINSTAMP)
	$(PLAIN)/bin/seqshape --help > /dev/null
	$(PLAIN)/bin/seqshape --version
	@out=$$($(PLAIN)/bin/seqshape train classify --epoch 1 2>&1); rc=$$?; echo "$$out"; \
	  test $$rc -eq 2 && test $$(echo "$$out" | wc -l) -eq 1 || { echo "plain install: expected one line and exit 2, got exit $$rc"; exit 1; }

demo: $(RUNSTAMP)
	$(VENV)/bin/seqshape demo --out runs/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

# two pytest workers of one compute thread each: the 2 cores, never more threads than cores
test: lint plain
	SEQSHAPE_THREADS=1 $(VENV)/bin/pytest -n 2

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests bench examples
	$(VENV)/bin/ruff format src tests bench examples

clean:
	rm -rf $(VENV) $(PLAIN) runs build src/*.egg-info
