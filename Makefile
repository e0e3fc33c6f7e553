# Two commands do everything on a fresh machine with Python 3.11:
#   make run    the whole platform locally (embedded PostgreSQL, Triton, gRPC, simulator, dashboard)
#   make test   set up and run the whole test suite (unit, integration, e2e)
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-stamp
PROTOS := $(wildcard protos/recsys/v1/*.proto)

.PHONY: run test test-containers install proto lint bench clean chromium sdk-ts

run: install
	$(VENV)/bin/recsys up

# lint first: the layer contracts, ruff and mypy are part of the suite. `images` (with the
# podman/buildah tools from apt when missing) comes before pytest: the containers test
# (tests/containers) plays those images from the manifests. A cold .state/ adds about 20
# minutes, a kept one about a minute (deploy/README.md).
test: install deploy-tools chromium container-tools images lint sdk-ts
	$(PY) -m pytest

# the containers test alone, with what it needs
test-containers: install deploy-tools container-tools images
	$(PY) -m pytest -m containers tests/containers

# The TypeScript SDK (sdk/typescript): dependencies from its lockfile, types generated from
# protos/ and compiled to dist/. Its node tests run under pytest (tests/*/test_typescript_sdk.py).
sdk-ts:
	@command -v npm >/dev/null || { echo "Node.js 20+ and npm are required for sdk/typescript"; exit 1; }
	cd sdk/typescript && npm ci --no-audit --no-fund && npm run build

# The dashboard's browser test (tests/e2e/test_dashboard_browser.py) drives Debian's
# chromium headless; install it when missing (sudo only when not root).
chromium:
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update && $$SUDO apt-get install -y chromium; }

install: $(STAMP)

$(PY):
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# torch==2.13.0 is the CPU build (see pyproject.toml); the proto code is generated first
# because the package includes it.
$(STAMP): pyproject.toml $(PROTOS) | $(PY)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet "grpcio-tools>=1.81,<1.82"
	$(MAKE) proto
	$(PIP) install --quiet -e ".[dev]"
	touch $(STAMP)

proto: | $(PY)
	rm -rf build/proto && mkdir -p build/proto
	$(PY) -m grpc_tools.protoc -I protos --python_out=build/proto --pyi_out=build/proto \
		--grpc_python_out=build/proto $(PROTOS)
	touch build/proto/recsys/__init__.py build/proto/recsys/v1/__init__.py build/proto/recsys/py.typed

# import-linter checks the layer contracts declared in pyproject.toml ([tool.importlinter]).
lint: install
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: install
	$(PY) -m benchmarks.recommend

clean:
	rm -rf build $(VENV) .pytest_cache .mypy_cache .ruff_cache

include deploy/deploy.mk
