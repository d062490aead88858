#!/usr/bin/env bash
# Set up worktree-runner and run it on a freshly made demo repository (see make_demo_repo.py).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$here" pytest
demo=$(mktemp -d)/demo
python3 "$here/examples/make_demo_repo.py" "$demo"
cd "$demo"
set +e
worktree-runner test --config worktree-runner.yml --results-json results.json --junit junit.xml
code=$?
set -e
echo "exit code: $code; results: $demo/results.json, JUnit: $demo/junit.xml"
exit "$code"
