# speechssl - two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of torch; an unpinned torch would pull several GB of CUDA packages.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install test demo demo-quick lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev,onnx]"
	touch $@

install: $(VENV)/.installed

test: install
	$(BIN)/python -m pytest tests

# The main job: synthetic corpus -> pretrain -> fine-tune pretrained vs scratch -> WER table (about half an
# hour on 2 CPU cores; egs/synthetic/README.md). demo-quick: the same stages in a few minutes (a smoke test).
demo: install
	bash egs/synthetic/run.sh

demo-quick: install
	bash egs/synthetic/run.sh --quick

lint: install
	$(BIN)/ruff check speechssl tests

bench: install
	$(BIN)/python bench/bench_model.py

clean:
	rm -rf $(VENV) .pytest_cache
