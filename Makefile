# One-command set-up: `make demo` runs the built-in demo, `make test` runs the tests.
# Both create .venv and install what they need on first use.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo slots-demo test test-all lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: it is the one package whose unpinned install pulls a CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev,local]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mckd models fetch qwen2.5-coder-1.5b
	$(BIN)/mckd run

# The slot-filling demo (configs/slots-demo.yaml): same teacher, BIO tagging students.
slots-demo: $(STAMP)
	$(BIN)/mckd models fetch qwen2.5-coder-1.5b
	$(BIN)/mckd run slots-demo

test: $(STAMP)
	$(BIN)/python -m pytest

# Everything but GPU tests: slow ones, and real-LLM ones (fetches the small GGUF teachers).
test-all: $(STAMP)
	$(BIN)/mckd models fetch smollm2-135m
	$(BIN)/mckd models fetch qwen2.5-coder-0.5b
	$(BIN)/python -m pytest -m "not gpu"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
