# The two commands of the README: `make demo` runs the main job, `make test` runs the tests.
# Both set up .venv on first use (scripts/setup.sh).
VENV := .venv
STAMP := $(VENV)/.agentgym-setup

.PHONY: demo test test-all setup bench

$(STAMP): pyproject.toml setup.py scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/agentgym demo

# Fast suite plus a bounded selection of slow end-to-end runs (see tests/conftest.py).
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -q --run-slow=all

bench: $(STAMP)
	for b in bench/bench_*.py; do $(VENV)/bin/python $$b --quick || exit 1; done
