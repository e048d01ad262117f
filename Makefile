# One-command set-up, demo and tests. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Debian's interpreter, not a user-local one: the sandbox runs student code as an
# unprivileged user, who must be able to read the virtual environment's Python.
PYTHON_FOR_VENV ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
DATA := data/embedded
SHARED_DATA ?= ../shared/data
VOCODER_MINUTES ?= 6.5
export NUMBA_CACHE_DIR := $(CURDIR)/.cache/numba

DEBIAN_PACKAGES := bubblewrap espeak-ng fluidsynth fluid-soundfont-gm sox libsndfile1 chromium libcap2-bin
SYSTEM_STAMP := .cache/system.stamp
VENV_STAMP := $(VENV)/.installed
NUMBA_STAMP := .cache/numba/.warmed

.PHONY: help setup sandbox-init student-env demo test test-gradescope data examples bench reference clean
help:  ## this list
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/' | expand -t 14

setup: $(SYSTEM_STAMP) $(VENV_STAMP) $(NUMBA_STAMP) sandbox-init student-env  ## Debian packages, .venv, numba's cache, the sandbox's first program, the student environment (a no-op when done)

$(SYSTEM_STAMP): Makefile
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
	  else \
	    echo "Missing Debian packages: $$missing" >&2; \
	    echo "make setup installs them only as root or with sudo (no password asked). An administrator runs:" >&2; \
	    echo "  sudo apt-get install -y $$missing" >&2; \
	    echo "then run make setup again (everything else it does needs no root)." >&2; \
	    exit 1; \
	  fi; \
	  echo "Installing Debian packages: $$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@mkdir -p $(@D) && touch $@

$(VENV_STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON_FOR_VENV) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

$(NUMBA_STAMP): $(VENV_STAMP)
	$(PY) -m reference warm
	@touch $@

# sandbox-init, the first program of every sandboxed run (grader/sandbox_init.c; grader/sandbox/init_program.py),
# built under .cache/sandbox once per version of its source; without a C compiler, runs use setpriv and prlimit.
sandbox-init: $(VENV_STAMP)  ## the sandbox's first program, compiled from grader/sandbox_init.c (a no-op, 0.1 s, when it is built)
	$(PY) -m grader.sandbox.init_program

# The environment student code runs with (environments/course.txt; grader/environment.py), ~3 GB.
student-env: $(VENV_STAMP)  ## the environment student code runs with (a no-op, 0.2 s, when it is built)
	$(VENV)/bin/grade env build

data: $(DATA)/manifest.csv  ## build the embedded data set (espeak-ng speech, FluidSynth piano)
$(DATA)/manifest.csv: $(VENV_STAMP) reference/data.py
	$(PY) -m reference data build --out $(DATA)

examples: setup data  ## build the example submissions (submissions/*.zip) from submissions/src
	$(PY) submissions/build.py

# After set-up: the held-out set and the baseline (cold: some 30 s; then cached), then the six examples graded with
# three jobs (misbehaving's timeout run sleeps, so two cores serve three), every run capped at 45 s: misbehaving's
# endless wait ends there instead of at the rubric's 120 s, and the longest honest runs (the notebook's, the reference
# solution's generation: 20 s on an idle machine, 32 s on a loaded one) keep their margin. Under 2 minutes on 2 cores.
demo: setup data examples  ## set up, build the examples, grade them all (under 2 minutes after set-up), print where the class page is
	$(PY) -m reference data summary $(DATA)
	$(VENV)/bin/grade baseline --jobs 2
	@TIMEFORMAT='graded the examples in %0R s'; time $(VENV)/bin/grade submissions/*.zip --out out/demo --jobs 3 --max-run-seconds 45

test: setup data  ## the test suite (under 10 minutes on 2 cores)
	$(PY) -m pytest -q

# tests/test_gradescope_emulation.py, left out of `make test` by its marker: the autograder zip's setup.sh and
# run_autograder in a namespace-less container with Gradescope's 768 MB (tests/gradescope_container.py); needs root.
test-gradescope: setup data examples  ## the Gradescope autograder zip in a container like Gradescope's (root; under 5 minutes)
	$(PY) -m pytest -q -s -m gradescope tests/test_gradescope_emulation.py

reference: setup data  ## retrain the committed checkpoints (reference/checkpoints): WaveNet and VAE 35 CPU min; the vocoder VOCODER_MINUTES on a GPU (its 6.5 min on one H200 are many hours of CPU), on FSDD too ($(SHARED_DATA)/fsdd)
	$(PY) -m reference train wavenet --data $(DATA) --out reference/checkpoints --minutes 30 --seed 0 --validate-every 50 --checkpoint-every 100 --no-progress
	$(PY) -m reference train vae --data $(DATA) --out reference/checkpoints --minutes 5 --seed 0 --validate-every 500 --no-progress
	$(PY) -m reference data real --in $(SHARED_DATA)/fsdd --out .cache/fsdd-speakers --per-speaker 150
	$(PY) -m reference train-vocoder prepare --out .cache/vocoder-data --data $(DATA) --fsdd .cache/fsdd-speakers
	$(PY) -m reference train-vocoder train --data .cache/vocoder-data --out reference/checkpoints/magnitude.pt --minutes $(VOCODER_MINUTES) --config '{"channels": 256, "head_channels": 512, "dilations": [1, 2, 4, 8, 1, 2, 4, 8]}' --batch-size 128 --seed 1

bench: setup data examples  ## every benchmark in bench/, each printing ratios against its own baseline
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:  ## remove what the build made (keeps the Debian packages)
	rm -rf $(VENV) .cache data build
