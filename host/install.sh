#!/usr/bin/env bash
# worktree-runner, host variant, step 1 of host/action.yml: a private virtualenv for the runner itself.
#
# Made from the job's own Python (3.11 or newer), under RUNNER_TEMP (GitHub empties it at the start and
# end of every job), holding exactly requirements.lock, hash-checked. The runner's package is not
# installed into it: step 2 runs ../entrypoint.py by path, as the Docker image runs /action/entrypoint.py,
# so nothing of ours is on any interpreter's path that the hypotheses use. The venv is never put on PATH
# either: hypotheses run the job's `python`, `pip`, `node`, `go`... exactly as the job's own steps do.
#
# Under Actions writes `python=<the venv's interpreter>` to $GITHUB_OUTPUT, else prints that path on
# stdout; progress on stderr; a problem is one `::error::` line on stdout and exit code 2. Runs outside
# Actions too:
#   RUNNER_TEMP=$(mktemp -d) bash host/install.sh
#
# Environment:
#   RUNNER_TEMP             where the venv goes (default: $TMPDIR, else /tmp)
#   WORKTREE_RUNNER_PYTHON  the interpreter to build the venv from. Default: `python3` on PATH when it is
#                           3.11 or newer (the one actions/setup-python chose), else the first of
#                           python3.14 ... python3.11 on PATH (a matrix leg on 3.9 still gets a runner)
#
# Within one job the venv is reused (second use of the action, e.g. `mode: merge` after `mode: test`):
# its name hashes requirements.lock, this script and the interpreter, and a marker written last says the
# install finished. Cancellation (SIGINT/SIGTERM to this process, as the runner sends them) stops pip
# and removes the half-made venv.
#
# Only bash builtins are used before an interpreter is chosen (the tests run this with a PATH holding
# nothing but a candidate python).
set -euo pipefail

error() {
    # One line; %-escape as workflow commands require, so a path cannot end the message early.
    local message="$1"
    message="${message//'%'/%25}"
    message="${message//$'\r'/%0D}"
    message="${message//$'\n'/%0A}"
    printf '::error title=worktree-runner (host)::%s\n' "$message"
    exit 2
}

now_ms() {
    if [[ -n "${EPOCHREALTIME:-}" ]]; then
        local t="${EPOCHREALTIME/[.,]/}"
        printf '%s\n' "$((t / 1000))"
    else
        printf '%s\n' "$((SECONDS * 1000))"
    fi
}
started_ms="$(now_ms)"

case "${BASH_SOURCE[0]}" in
    */*) here="${BASH_SOURCE[0]%/*}" ;;
    *) here=. ;;
esac
action_root="$here/.."
lock="$action_root/requirements.lock"
[[ -f "$lock" && -f "$action_root/entrypoint.py" ]] \
    || error "the action's checkout is incomplete: no requirements.lock or entrypoint.py next to $here"

if [[ "${RUNNER_OS:-}" == Windows ]]; then
    error "the host variant runs on Linux and macOS runners; on Windows use a Linux job"
fi

is_new_enough() {
    "$1" -E -s -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

python=""
if [[ -n "${WORKTREE_RUNNER_PYTHON:-}" ]]; then
    is_new_enough "$WORKTREE_RUNNER_PYTHON" \
        || error "WORKTREE_RUNNER_PYTHON=$WORKTREE_RUNNER_PYTHON is not a Python 3.11 or newer"
    python="$WORKTREE_RUNNER_PYTHON"
else
    for candidate in python3 python3.14 python3.13 python3.12 python3.11; do
        found="$(command -v "$candidate" 2>/dev/null)" || continue
        if is_new_enough "$found"; then
            python="$found"
            break
        fi
    done
    if [[ -z "$python" ]]; then
        job_python="$(command -v python3 2>/dev/null)" || job_python=""
        if [[ -n "$job_python" ]]; then
            job_version="$("$job_python" -E -s -c 'import platform; print(platform.python_version())' 2>&1)" \
                || job_version="not runnable"
            error "the runner needs Python 3.11 or newer to run on: python3 on PATH ($job_python) is $job_version and no python3.11 ... python3.14 is on PATH either; set WORKTREE_RUNNER_PYTHON to a Python 3.11 or newer, e.g. the python-path output of an earlier actions/setup-python step (the hypotheses keep using the python first on PATH)"
        fi
        error "the runner needs Python 3.11 or newer to run on, and there is no python3 on PATH; add a step 'uses: actions/setup-python' with python-version 3.11 or newer before this one, or set WORKTREE_RUNNER_PYTHON"
    fi
fi

# The venv's name: the lock, this script (how the venv is made) and the interpreter (path and version).
key="$("$python" -E -s -c '
import hashlib, os, sys
digest = hashlib.sha256()
for path in sys.argv[1:]:
    with open(path, "rb") as fh:
        digest.update(hashlib.sha256(fh.read()).digest())
digest.update(os.path.realpath(sys.executable).encode() + b"\0" + sys.version.encode())
print(digest.hexdigest()[:16])
' "$lock" "${BASH_SOURCE[0]}")"
version="$("$python" -E -s -c 'import platform; print(platform.python_version())')"

base="${RUNNER_TEMP:-${TMPDIR:-/tmp}}"
base="${base%/}/worktree-runner-host"
venv="$base/venv-$key"
venv_python="$venv/bin/python"
marker="$venv/.worktree-runner-installed"
case "$venv" in
    *$'\n'* | *$'\r'*) error "RUNNER_TEMP contains a line break: $base" ;;
esac

child=""
on_signal() {
    # The runner signals only this process. The slow commands run as background jobs in a process
    # group of their own, so that the trap runs at once (bash defers a trap while a foreground child
    # runs, and without a trap drops SIGINT when that child does not die of it), and so that the
    # whole group goes: `python -m venv` and ensurepip, or pip and anything it starts.
    trap - INT TERM
    if [[ -n "$child" ]]; then
        kill -TERM -- "-$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    rm -rf "$venv"
    printf 'worktree-runner host: install cancelled by SIG%s; %s removed\n' "$1" "$venv" >&2
    if [[ "$1" == INT ]]; then exit 130; else exit 143; fi
}
in_own_group() {
    local status=0
    set -m
    "$@" &
    child=$!
    set +m
    wait "$child" || status=$?
    child=""
    return "$status"
}
pip_install() {
    # A job-wide PIP_USER/PIP_TARGET/PIP_PREFIX would send the install outside the venv.
    unset PIP_USER PIP_TARGET PIP_PREFIX PIP_NO_BINARY
    exec "$venv_python" -E -s -m pip install --disable-pip-version-check --no-input --quiet \
        --require-hashes --no-deps -r "$lock" 1>&2
}

if [[ -f "$marker" && -x "$venv_python" ]]; then
    what="reused (made earlier in this job)"
else
    trap 'on_signal INT' INT
    trap 'on_signal TERM' TERM
    rm -rf "$venv"
    mkdir -p "$base"
    status=0
    in_own_group "$python" -E -s -m venv "$venv" >&2 || status=$?
    if [[ "$status" != 0 ]]; then
        rm -rf "$venv"
        error "$python -m venv failed (exit $status, Python $version); on Debian/Ubuntu the system Python needs the python3-venv package, or use actions/setup-python"
    fi
    in_own_group pip_install || status=$?
    if [[ "$status" != 0 ]]; then
        rm -rf "$venv"
        error "installing the runner's locked dependencies into $venv failed (pip exit $status; Python $version at $python)"
    fi
    : >"$marker"
    trap - INT TERM
    what="installed"
fi

elapsed_ms="$(($(now_ms) - started_ms))"
printf 'worktree-runner host: runner venv %s %s in %d.%03d s (Python %s from %s)\n' \
    "$venv" "$what" "$((elapsed_ms / 1000))" "$((elapsed_ms % 1000))" "$version" "$python" >&2
if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
    printf 'python=%s\n' "$venv_python" >>"$GITHUB_OUTPUT"
else
    printf '%s\n' "$venv_python"
fi
