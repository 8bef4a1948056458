# The two commands of the README's Quick start: `make demo` and `make test`.
# Each creates the virtual environment and installs the project on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean system-deps app-deps

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[trainer,test]'
	touch $(STAMP)

demo: $(STAMP) app-deps
	$(PY) -m lora_studio --demo --workspace demo-workspace

# The X11 libraries Qt needs on Linux (installed with root or sudo, else the command is printed).
app-deps:
	scripts/install_system_deps.sh app-packages.txt

system-deps:
	scripts/install_system_deps.sh app-packages.txt system-packages.txt

# Two workers: the suite is CPU-bound, and the CI machines have two cores (TEST_WORKERS=0 runs it in one process).
TEST_WORKERS ?= 2

test: $(STAMP) system-deps
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -n $(TEST_WORKERS)

bench: $(STAMP)
	$(PY) bench/trainer_throughput.py --quick

clean:
	rm -rf $(VENV) demo-workspace
