# Two commands do everything on a fresh machine with Python 3.11, make and git:
#   make book   set up, execute every chapter, build the website into _build/html
#   make test   set up, lint, unit tests, chapters as tests, strict book build, browser test
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VENDOR_STAMP := book/_vendor/.installed
export PYTHONHASHSEED := 0
# The book's models are small: one thread per process is faster than two threads
# fighting over two cores (ten times faster for the Jacobian tests under load).
export OMP_NUM_THREADS ?= 1

.PHONY: book test setup lint unit notebooks build-strict browser browser-deps vendor clean checkpoints benchmark release-check pdf pdf-deps

setup: $(STAMP) $(VENDOR_STAMP)

$(STAMP): requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch downloads a multi-GB CUDA build
	$(BIN)/pip install -q "$$(grep -E '^torch==' requirements-dev.txt)"
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

vendor: $(VENDOR_STAMP)

$(VENDOR_STAMP): scripts/vendor_js.sh
	bash scripts/vendor_js.sh book/_vendor
	touch $@

book: setup
	$(BIN)/jupyter-book build . --keep-going
	@echo "Open $(CURDIR)/_build/html/index.html"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(STAMP)
	$(BIN)/pytest -n 2 --doctest-modules flowcourse
	$(BIN)/pytest -n 2 --dist loadgroup tests -m "not browser and not pdf"

notebooks: $(STAMP)
	$(BIN)/pytest -n 2 book

build-strict: setup
	$(BIN)/jupyter-book build . -W -n --keep-going

browser-deps:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "chromium is missing and cannot be installed (not root): the browser test will skip"; }

browser: browser-deps
	$(BIN)/pytest tests -m browser

test: setup lint
	$(BIN)/pytest -n 2 --doctest-modules flowcourse
	$(BIN)/pytest -n 2 --dist loadgroup tests book -m "not browser and not pdf"
	$(MAKE) build-strict
	$(MAKE) browser

# The printable edition: the whole book as one PDF, _build/latex/flowcourse.pdf, then a
# check of its pages and chapter titles. Not part of make test (it adds minutes and a
# TeX Live of about 400 MB); as root, the set-up installs Debian's TeX Live when missing.
pdf-deps:
	@command -v latexmk >/dev/null && command -v pdftotext >/dev/null || { [ "$$(id -u)" = 0 ] && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends latexmk texlive-latex-recommended texlive-latex-extra \
	    texlive-fonts-recommended texlive-xetex fonts-freefont-otf lmodern poppler-utils \
	    >/dev/null; } || echo "TeX Live is missing and cannot be installed (not root)"; }

pdf: setup pdf-deps
	$(BIN)/jupyter-book build . --builder pdflatex
	$(BIN)/pytest tests/test_pdf.py -m pdf
	@echo "Open $(CURDIR)/_build/latex/flowcourse.pdf"

# Before tagging v<version>: the version set once and named everywhere (changelog,
# install cells, CITATION.cff, footer), and an sdist and wheel that hold the checkpoints
# and exercises (built offline with the venv's setuptools). Not part of make test.
release-check: $(STAMP)
	$(BIN)/python scripts/release_check.py

# Rebuild the small checkpoints the book loads by default (seeded, reproducible).
checkpoints: $(STAMP)
	for script in scripts/train_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# Speed against zuko, nflows and normflows (not part of make test): the full grid takes
# about 20-30 min on 2 quiet CPU cores and writes benchmarks/results.json (read by
# book/results.md) and benchmarks/results.md. Options go through BENCHMARK_ARGS, e.g.
# make benchmark BENCHMARK_ARGS=--quick, or BENCHMARK_ARGS="--device cuda" on a GPU.
BENCHMARK_ARGS ?=
benchmark: $(STAMP)
	$(BIN)/pip install -q -r requirements-bench.txt
	$(BIN)/python benchmarks/run.py $(BENCHMARK_ARGS)

clean:
	rm -rf _build book/_vendor
