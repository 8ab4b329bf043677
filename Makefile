# The README's two commands: `make demo` (install, then run the whole chain locally)
# and `make test`. Everything installs into .venv from requirements.txt + constraints.txt.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export MLOPS_HOME ?= $(CURDIR)/.mlops
export AIRFLOW_HOME ?= $(MLOPS_HOME)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__PARALLELISM ?= 4
export PYTHONPATH := $(CURDIR)/plugins$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: install demo test airflow clean lock browser

install: $(STAMP)

$(STAMP): requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode -r requirements.txt -c constraints.txt
	touch $(STAMP)

demo: install
	$(BIN)/python -m tools.demo

# The browser test drives Debian's chromium; install it when we can (root), else it skips.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  echo "chromium not installed: the browser test will be skipped"

test: install browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

airflow: install
	$(BIN)/python -m tools.webui

clean:
	-$(BIN)/python -m mlops.backends.local.runtime stop
	-$(BIN)/python -m tools.webui stop
	rm -rf $(MLOPS_HOME)

lock:
	$(BIN)/uv pip compile requirements.txt -p 3.11 --no-header --no-annotate -o constraints.txt
