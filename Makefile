# The two commands: `make run` serves the dashboard, `make test` runs the whole suite.
# Both do all their own set-up (see scripts/setup.sh) and are safe to run again.
.PHONY: run test setup bench clean

run:
	@bash scripts/setup.sh run
	@echo "==> vmsite on http://127.0.0.1:$${VMSITE_PORT:-8000}/  (Ctrl-C stops every process)"
	@exec .venv/bin/honcho start -f Procfile

test:
	@bash scripts/setup.sh test
	.venv/bin/pytest $(PYTEST_ARGS)

bench:
	@bash scripts/setup.sh test
	.venv/bin/python bench/inventory.py
	.venv/bin/python bench/actions.py
	.venv/bin/python bench/console.py
	.venv/bin/python bench/storage.py
	.venv/bin/python bench/events.py

clean:
	rm -rf .testdata
