# The two commands of the README: `make demo` and `make test`. Both build .venv from nothing.
# `make docs` builds the documentation site (strict: a broken link or reference fails) into build/site.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test docs venv clean

$(BIN)/.stamp: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, on its own: the CPU wheel on disk; a range it fails would pull a CUDA build.
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[train,dev,serve,baselines,docs]'
	touch $@

venv: $(BIN)/.stamp

demo: venv
	$(BIN)/kdeploy demo

test: venv
	$(BIN)/python -m pytest -q -n 2 --dist loadfile  # two workers, a test file each (one thread each: tests/conftest.py)

docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

clean:
	rm -rf $(VENV) runs
