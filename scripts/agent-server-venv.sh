#!/usr/bin/env bash
# Make a Python >= 3.12 virtualenv with a pinned openhands-agent-server for the end-to-end tests.
# Usage: scripts/agent-server-venv.sh [DIR]   (default .cache/agent-server-venv; prints the interpreter path)
# The agent-server needs Python >= 3.12; the runner itself stays on 3.11+, so this is a separate venv.
# Idempotent and safe to run concurrently (a lock next to DIR); pip's output goes to DIR/pip-install.log
# and is shown only when the install fails.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-.cache/agent-server-venv}"
version="1.58.0"
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
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
log="$dir/pip-install.log"
echo "agent-server-venv: installing openhands-agent-server $version into $dir (log: $log)" >&2
if ! "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        "openhands-agent-server==$version" "openhands-sdk==$version" "openhands-tools==$version" \
        pytest coverage >"$log" 2>&1; then
    echo "agent-server-venv: pip install failed; the last lines of $log:" >&2
    tail -n 40 "$log" >&2
    exit 1
fi
echo "$version" > "$dir/.pinned"
echo "$dir/bin/python"
