# worktree-runner: GitHub Docker container action.
#
# GitHub builds this file with `docker build` in "Set up job" on every job (no layer cache on hosted
# runners), then runs it as root with `--workdir /github/workspace` and the workspace mounted there.
# Hence: no USER (the container must be root to write the workspace), no WORKDIR (the runner sets it).
# Layers are ordered so that a change to the code re-runs only the last COPY: apt, then the locked
# dependencies, then the package.
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

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends git \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*

# Dependencies only: this layer is reused as long as requirements.lock does not change.
# The package is NOT put on the interpreter's path (no PYTHONPATH, no .pth): `python
# /action/entrypoint.py` finds it as the script's own directory, while the user's test commands,
# which run with this same interpreter, never see a top-level `runner` package of ours.
# PIP_BREAK_SYSTEM_PACKAGES (build step only) is a no-op on the official image and lets the same line
# work on a Debian-python base that carries an EXTERNALLY-MANAGED marker (the offline stand-in).
COPY requirements.lock /tmp/requirements.lock
RUN PIP_BREAK_SYSTEM_PACKAGES=1 python -m pip install --no-cache-dir --require-hashes --no-deps \
        -r /tmp/requirements.lock \
 && rm /tmp/requirements.lock \
 && python -c "import pydantic, yaml"

COPY pyproject.toml entrypoint.py /action/
COPY runner /action/runner
# PYTHONDONTWRITEBYTECODE stops run-time writes only; compile once here so start-up stays fast.
RUN python -m compileall -q /action

ENTRYPOINT ["python", "/action/entrypoint.py"]
