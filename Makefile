# Entry points; the real work is in scripts/. All tools come from .venv (make setup).
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup test unit integration interop sanity ecosystem peers demo demo-registry bench build

setup:
	bash scripts/setup.sh

# The test command: setup, peers, unit, integration, interop, sanity.
test:
	bash scripts/test.sh

# Single stages (setup always runs first).
unit integration interop sanity ecosystem:
	bash scripts/test.sh $@

peers:
	bash scripts/build-peers.sh

demo:
	bash scripts/demo.sh

# The second recipe: a registry on 127.0.0.1, published to twice.
demo-registry:
	bash scripts/demo-registry.sh

bench: setup
	$(BIN)/python benchmarks/run.py

build: setup
	mkdir -p .build
	$(BIN)/ansible-galaxy collection build --force --output-path .build .
