# The two commands of the README: `make demo` and `make test`.
# Each creates the virtual environment (VENV, default .venv) when it is missing
# or when setup.py / tools/setup_env.sh changed, then runs its job.
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: setup demo demo-pose demo-cls test test-quick lint
setup: $(VENV)/.installed

$(VENV)/.installed: setup.py tools/setup_env.sh
	./tools/setup_env.sh
	touch $@

demo: setup
	PY=$(PY) ./tools/demo.sh det

demo-pose: setup
	PY=$(PY) ./tools/demo.sh pose

demo-cls: setup
	PY=$(PY) ./tools/demo.sh cls

# Two pytest-xdist workers share the cores (tests/README.md, "Both cores"):
# whole test files go to one worker, so a module's fixtures are made once.
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest tests -q -rs --durations=30 -n $(TEST_WORKERS) --dist loadfile

# The unit tier, for the edit loop (tests/README.md, "Tiers").
test-quick: setup
	$(PY) -m pytest tests -q -rs -m quick

# flake8, isort and yapf with setup.cfg's settings, as .pre-commit-config.yaml runs them.
lint: setup
	$(VENV)/bin/flake8 mmscnet tools tests
	$(VENV)/bin/isort --check-only --diff mmscnet tools tests
	$(VENV)/bin/yapf --diff --recursive mmscnet tools tests
