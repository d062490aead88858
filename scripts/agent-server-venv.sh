#!/usr/bin/env bash
# Make a Python >= 3.12 virtualenv with a pinned openhands-agent-server for the end-to-end tests.
# Usage: scripts/agent-server-venv.sh [DIR]   (default .cache/agent-server-venv; prints the interpreter path)
# The agent-server needs Python >= 3.12; the runner itself stays on 3.11+, so this is a separate venv.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-.cache/agent-server-venv}"
version="1.58.0"
if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "import openhands.agent_server" 2>/dev/null \
    && [ "$(cat "$dir/.pinned" 2>/dev/null)" = "$version" ]; then
    echo "$dir/bin/python"; exit 0
fi
py=""
for candidate in python3.13 python3.12 "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3 \
        "$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
        py="$candidate"; break
    fi
done
if [ -z "$py" ]; then
    echo "agent-server-venv: no Python >= 3.12 found (tried python3.12/3.13 and pyenv versions)" >&2
    exit 1
fi
rm -rf "$dir"
"$py" -m venv "$dir"
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check \
    "openhands-agent-server==$version" "openhands-sdk==$version" "openhands-tools==$version" pytest coverage >&2
echo "$version" > "$dir/.pinned"
echo "$dir/bin/python"
