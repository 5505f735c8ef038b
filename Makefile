# The two commands: `make run` serves the dashboard, `make test` runs the whole suite.
# Both do all their own set-up (see scripts/setup.sh) and are safe to run again.
.PHONY: run test test-fast setup bench clean

# The suite runs in TEST_WORKERS pytest-xdist workers, each with its own database, Redis database,
# data folder, ports and harness hosts (vmsite/settings_test.py, tests/harness/indices.py).
# Measured on clean clones, 2 cores (README, "Test suite"): 5 workers 5 min 53 s of pytest against 6 min 46 s
# with 4 and more with 3; most of a worker's time is waiting on daemons and guests, not CPU.
# worksteal: a worker that runs out of tests takes half of a busy one's queue (with the default
# scheduler one worker ran its last 90 s of console tests alone while the four others were done).
TEST_WORKERS ?= 5
FAST_WORKERS ?= 2

run:
	@bash scripts/setup.sh run
	@echo "==> vmsite on http://127.0.0.1:$${VMSITE_PORT:-8000}/  (Ctrl-C stops every process)"
	@exec .venv/bin/honcho start -f Procfile

# Bytecode is written even when the caller's environment says not to (an empty PYTHONDONTWRITEBYTECODE is unset for Python):
# the suite starts hundreds of Python processes (workers, servers, listeners, manage.py), and each
# would compile vmsite's modules again, as each pytest-xdist worker would rewrite every test module.
test: export PYTHONDONTWRITEBYTECODE :=
test:
	@bash scripts/setup.sh test
	.venv/bin/pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# The tests that need no daemon and run quickly (forms, XML, access rules, settings): every test neither
# integration nor slow (tests/conftest.py puts each test in one of the three sets).
# A test of this set that reaches Redis or a real libvirtd fails and says so (tests/conftest.py).
test-fast:
	@bash scripts/setup.sh fast
	VMSITE_TEST_FAST=1 .venv/bin/pytest -n $(FAST_WORKERS) -m "not integration and not slow" $(PYTEST_ARGS)

bench:
	@bash scripts/setup.sh test
	.venv/bin/python bench/inventory.py
	.venv/bin/python bench/actions.py
	.venv/bin/python bench/console.py
	.venv/bin/python bench/storage.py
	.venv/bin/python bench/events.py
	.venv/bin/python bench/dashboard.py
	.venv/bin/python bench/backups.py
	.venv/bin/python bench/listener.py

clean:
	rm -rf .testdata
