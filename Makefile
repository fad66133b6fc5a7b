# Set-up and the two everyday commands. `make demo` and `make test` create the
# virtual environment (.venv) when it is missing and install the package into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.landscape-installed
PYTEST_ARGS ?=
FMNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
# torch and torchvision are pinned to the CUDA builds that also run on the CPU
# (the ones this machine's pip finds on disk); see README "Installing".
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: install data browser demo test pytest test-slow clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(TORCH_PINS)
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

# Fashion-MNIST from Debian (dataset-fashion-mnist); needs root (or sudo).
data: $(FMNIST)

$(FMNIST):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist

# Debian's Chromium, for the test that opens a generated report in a headless browser
# (skipped where it is missing).
browser:
	@command -v chromium >/dev/null || { if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

demo: install data
	$(VENV)/bin/landscape demo

test: install data
	$(MAKE) --no-print-directory pytest

# pytest alone, with the environment as it is; its exit code is make's.
pytest:
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: install data
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
