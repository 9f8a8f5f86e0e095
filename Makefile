# Shortcuts for the commands in the README.
.PHONY: setup test quickstart bench

setup:
	EXTRAS=test,hf,plot bash scripts/setup_env.sh

test:
	bash scripts/test.sh -q

quickstart:
	bash examples/quickstart.sh

bench:
	EXTRAS=test,hf bash scripts/setup_env.sh && .venv/bin/python benchmarks/run.py
