# The two commands of the README: `make demo` and `make test`. Both build .venv from nothing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test venv clean

$(BIN)/.stamp: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, on its own: the CPU wheel on disk; a range it fails would pull a CUDA build.
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[train,dev,serve,baselines]'
	touch $@

venv: $(BIN)/.stamp

demo: venv
	$(BIN)/kdeploy demo

test: venv
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs
