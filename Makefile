# The two Quickstart commands are `make run` and `make test`; both build .venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Metric libraries must never reach for the Hugging Face hub at run time (see README, Offline).
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run test bench clean

$(BIN)/.installed: pyproject.toml requirements/lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements/lock.txt -e '.[all]'
	$(BIN)/python -m pip install --quiet --no-deps -c requirements/lock.txt tinysoundfont
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/python run_all.py $(ARGS)

test: install
	$(BIN)/python -m pytest $(ARGS)

bench: install
	$(BIN)/python -m pytest benchmarks --benchmark-enable --benchmark-autosave $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
