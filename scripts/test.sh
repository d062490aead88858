#!/usr/bin/env bash
# Install what the tests need and run them: lint, types, the whole pytest suite.
# Docker tests run when a Docker engine is reachable (CI starts one first, see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e '.[dev]'
python3 -m ruff check runner tests bench entrypoint.py
python3 -m mypy
python3 -m pytest -q "$@"
