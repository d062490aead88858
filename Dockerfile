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
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    LANG=C.UTF-8

# git and the locked dependencies share one layer, so that binutils (for `strip`, below) is installed
# and purged inside the layer that uses it and leaves nothing behind. Hosted runners have no layer
# cache, so this costs nothing there; locally a change to requirements.lock re-runs apt too.
# The package is NOT put on the interpreter's path (no PYTHONPATH, no .pth): `python
# /action/entrypoint.py` finds it as the script's own directory, while the user's test commands,
# which run with this same interpreter, never see a top-level `runner` package of ours.
# PIP_BREAK_SYSTEM_PACKAGES (build step only) is a no-op on the official image and lets the same line
# work on a Debian-python base that carries an EXTERNALLY-MANAGED marker (the offline stand-in).
#
# Size: the issue caps the image at 250 MB and python:3.12-slim + git alone weigh ~217 MB, so:
# * requirements.lock leaves out cryptography (~15 MB; uv's --no-emit-package, see its top line and
#   requirements.in). PyGithub needs it only through pyjwt[crypto], to sign GitHub App JWTs (RS256);
#   the action authenticates with a token (github.Auth.Token), which never signs, and pyjwt imports
#   without it (has_crypto = False). tests/test_pr_comment.py passes inside this image.
# * --no-compile: no .pyc for site-packages (~16 MB). PYTHONDONTWRITEBYTECODE makes Python compile
#   those imports in memory instead; measured ~0.3 s once per action start and ~0.2 s per
#   `python -m coverage run -m pytest`. Our own package is still compiled (last layer).
# * strip --strip-debug on the extension modules pip has just written (-newer the stamp, so a base
#   image file is never copied up into this layer): the PyNaCl and PyYAML wheels ship DWARF debug
#   info (~5 MB). Code and symbol tables are unchanged.
# * pip stays: it is part of the base image's layer (uninstalling it here would save nothing) and a
#   setup-command such as `python -m pip install -e .` (README) runs with this interpreter.
#   The official 3.12 image has no setuptools/wheel to remove.
# * Nothing to gain on git: slim images already exclude /usr/share/{doc,man,locale} (so git-man is
#   empty), and removing perl (needed by git's package, not by the commands we run) would leave
#   dpkg with broken dependencies, so a user's `apt-get install` in a setup-command would fail.
COPY requirements.lock /tmp/requirements.lock
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends git binutils \
 && touch /tmp/stamp \
 && PIP_BREAK_SYSTEM_PACKAGES=1 python -m pip install --no-cache-dir --no-compile --require-hashes \
        --no-deps -r /tmp/requirements.lock \
 && site="$(python -c 'import os, yaml; print(os.path.dirname(os.path.dirname(yaml.__file__)))')" \
 && find "$site" -name '*.so' -newer /tmp/stamp -exec strip --strip-debug {} + \
 && DEBIAN_FRONTEND=noninteractive apt-get purge -y --auto-remove binutils \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /tmp/requirements.lock /tmp/stamp \
 && python -c "import pydantic, yaml, httpx, github, coverage, pytest" \
 && git --version

COPY pyproject.toml entrypoint.py /action/
COPY runner /action/runner
# PYTHONDONTWRITEBYTECODE stops run-time writes only; compile once here so start-up stays fast.
RUN python -m compileall -q /action

ENTRYPOINT ["python", "/action/entrypoint.py"]
