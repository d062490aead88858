# worktree-runner: GitHub Docker container action.
#
# GitHub builds this file with `docker build` in "Set up job" on every job (no layer cache on hosted
# runners), then runs it as root with `--workdir /github/workspace` and the workspace mounted there.
# Hence: no USER (the container must be root to write the workspace), no WORKDIR (the runner sets it).
# Layers are ordered so that a change to the code re-runs only the last COPY: git and the locked
# dependencies (one layer, see below), then the package.
FROM python:3.12.12-slim-bookworm

LABEL org.opencontainers.image.title="worktree-runner" \
      org.opencontainers.image.description="Test several candidate changes (hypotheses) at once, each in its own git worktree, in parallel." \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.12.12-slim-bookworm"

# PYTHONUNBUFFERED: no TTY under the runner, so without it stdout is block-buffered and workflow
# commands (::group::, ::error::) get reordered against stderr.
# PYTHONDONTWRITEBYTECODE: the action runs as root inside the user's checkout; never leave root-owned
# __pycache__ directories behind in /github/workspace or in worktrees.
# WORKTREE_RUNNER_LAYER_CACHE=0: no layer cache in $HOME (/github/home, the runner's): a job's container
# starts once, and root-owned files must not be left in a directory the runner cleans as its own user.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WORKTREE_RUNNER_LAYER_CACHE=0 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    LANG=C.UTF-8

# git and the locked dependencies share one layer, so that binutils (for `strip`, below) is installed
# and purged inside the layer that uses it and leaves nothing behind. Hosted runners have no layer
# cache, so this costs nothing there; locally a change to requirements.lock re-runs apt too.
#
# Two environments, split from the one requirements.lock (awk: a requirement line starts a block, its
# hashes follow indented):
# * /action/venv, a virtualenv without pip, holds the runner's own dependencies (pydantic, httpx,
#   PyGithub, PyYAML, ...). The entrypoint runs its python; it is never on PATH, so nothing a
#   hypothesis runs sees or changes it (a setup's `pip install pydantic<2` cannot break the action).
# * The image's interpreter (`python` on PATH) is the hypotheses' base: pip (part of the base image),
#   pytest and coverage (also what verifies OpenHands-generated tests), nothing of ours. Each
#   hypothesis gets a virtualenv layered over it (runner/engine/environments.py).
# The package itself is NOT put on any interpreter's path (no PYTHONPATH, no .pth): `python
# /action/entrypoint.py` finds it as the script's own directory, so a user's top-level package named
# `runner` is never shadowed.
# PIP_BREAK_SYSTEM_PACKAGES (build step only) is a no-op on the official image and lets the same line
# work on a Debian-python base that carries an EXTERNALLY-MANAGED marker (the offline stand-in).
#
# Size: the issue caps the image at 250 MB and python:3.12-slim + git alone weigh ~217 MB, so:
# * requirements.lock leaves out cryptography (~15 MB; uv's --no-emit-package, see its top line and
#   requirements.in). PyGithub needs it only through pyjwt[crypto], to sign GitHub App JWTs (RS256);
#   the action authenticates with a token (github.Auth.Token), which never signs, and pyjwt imports
#   without it (has_crypto = False). tests/test_pr_comment.py passes inside this image.
# * Each package is installed once (the split above), and the virtualenv has no pip: `pip --python`
#   installs into it from outside.
# * --no-compile: no .pyc for site-packages (~16 MB). PYTHONDONTWRITEBYTECODE makes Python compile
#   those imports in memory instead; measured ~0.3 s once per action start and ~0.2 s per
#   `python -m coverage run -m pytest`. Our own package is still compiled (last layer).
# * strip --strip-debug on the extension modules pip has just written (-newer the stamp, so a base
#   image file is never copied up into this layer): the PyNaCl and PyYAML wheels ship DWARF debug
#   info (~5 MB). Code and symbol tables are unchanged.
# * pip stays: it is part of the base image's layer (uninstalling it here would save nothing) and a
#   setup-command such as `pip install -e .` (README) runs it. The official 3.12 image has no
#   setuptools/wheel to remove. uv is not installed (~40 MB); `pip install uv` in a setup works.
# * Nothing to gain on git: slim images already exclude /usr/share/{doc,man,locale} (so git-man is
#   empty), and removing perl (needed by git's package, not by the commands we run) would leave
#   dpkg with broken dependencies, so a user's `apt-get install` in a setup-command would fail.
COPY requirements.lock /tmp/requirements.lock
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends git binutils \
 && touch /tmp/stamp \
 && tools='^(coverage|iniconfig|packaging|pluggy|pygments|pytest)==' \
 && awk -v re="$tools" '/^[^ #]/ { tool = ($0 ~ re) } tool' /tmp/requirements.lock > /tmp/tools.lock \
 && awk -v re="$tools" '/^[^ #]/ { tool = ($0 ~ re) } !tool' /tmp/requirements.lock > /tmp/runner.lock \
 && PIP_BREAK_SYSTEM_PACKAGES=1 python -m pip install --no-cache-dir --no-compile --require-hashes \
        --no-deps -r /tmp/tools.lock \
 && python -m venv --without-pip /action/venv \
 && python -m pip --python /action/venv/bin/python install --no-cache-dir --no-compile \
        --require-hashes --no-deps -r /tmp/runner.lock \
 && find /action/venv "$(python -c 'import os, coverage; print(os.path.dirname(os.path.dirname(coverage.__file__)))')" \
        -name '*.so' -newer /tmp/stamp -exec strip --strip-debug {} + \
 && DEBIAN_FRONTEND=noninteractive apt-get purge -y --auto-remove binutils \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /tmp/requirements.lock /tmp/tools.lock /tmp/runner.lock /tmp/stamp \
 && /action/venv/bin/python -c "import pydantic, yaml, httpx, github" \
 && python -c "import coverage, pytest, pip" \
 && ! python -c "import pydantic" 2>/dev/null \
 && git --version

COPY pyproject.toml entrypoint.py /action/
COPY runner /action/runner
# PYTHONDONTWRITEBYTECODE stops run-time writes only; compile once here so start-up stays fast
# (our package only: the virtualenv's site-packages stay uncompiled, see --no-compile above).
RUN /action/venv/bin/python -m compileall -q /action/runner /action/entrypoint.py

ENTRYPOINT ["/action/venv/bin/python", "/action/entrypoint.py"]
