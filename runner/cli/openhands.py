"""``worktree-runner submit | status | collect | generate``: OpenHands test generation on the CLI.

The API keys come from the environment only (OPENHANDS_API_KEY, OPENHANDS_LLM_API_KEY): a key on
the command line would be visible to every user of the machine in ``ps``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from runner.cli.arguments import float_arg
from runner.config import split_command
from runner.report.results import write_atomic

__all__ = ["SUBCOMMANDS", "add_parsers", "run"]

SUBCOMMANDS = ("submit", "status", "collect", "generate")
MAX_RERUNS = 20


_threshold = float_arg("a percentage", lambda v: 0 <= v <= 100, "between 0 and 100")
_seconds = float_arg("seconds", lambda v: v >= 0, ">= 0")


def _reruns(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_RERUNS:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_RERUNS}, got {value}")
    return value


_interval = float_arg("seconds", lambda v: v > 0, "> 0")  # 0 would poll the server in a tight loop


def add_parsers(sub: Any) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--repo", type=Path, default=Path("."), help="the repository (default: .)")
        p.add_argument(
            "--backend", choices=("cloud", "agent-server"), help="default: $OPENHANDS_BACKEND, else cloud"
        )
        p.add_argument("--url", help="OpenHands server URL (default: $OPENHANDS_API_URL)")

    def request(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--module-path", required=True, action="append",
            help="the module to write tests for (relative to --repo); repeat it for a batch (one task ID)",
        )  # fmt: skip
        p.add_argument(
            "--output-path", required=True,
            help="where the test file goes (relative to --repo); with several modules a template with "
            "{stem}, e.g. tests/generated/test_{stem}.py",
        )  # fmt: skip
        p.add_argument("--coverage-threshold", type=_threshold, default=80.0, help="percent (default 80)")

    def waiting(p: argparse.ArgumentParser) -> None:
        p.add_argument("--wait-timeout", type=_seconds, default=600.0, help="seconds (default 600)")
        p.add_argument("--poll-interval", type=_interval, default=5.0, help="seconds (default 5)")
        p.add_argument("--test-timeout", type=_seconds, default=600.0, help="seconds for running the tests")
        p.add_argument("--result-json", type=Path, help="also write the result document here")
        p.add_argument("--setup", help="command run in the verification worktree before the tests")
        p.add_argument(
            "--test-reruns", type=_reruns, default=3,
            help="a kept test must pass again in this many more fresh processes (default 3)",
        )  # fmt: skip
        p.add_argument(
            "--existing-test", action="append", default=[], metavar="PATH",
            help="a repository test file for the module; kept tests must add coverage beyond it (repeatable)",
        )  # fmt: skip

    p = sub.add_parser("submit", help="submit a test-generation task to OpenHands; prints the task ID")
    common(p)
    request(p)
    p = sub.add_parser("status", help="one look at a task (never waits); prints JSON")
    common(p)
    p.add_argument("task_id", metavar="TASK_ID")
    p = sub.add_parser("collect", help="wait for a task, write and verify its tests; prints JSON")
    common(p)
    p.add_argument("task_id", metavar="TASK_ID")
    waiting(p)
    p = sub.add_parser("generate", help="submit and collect in one (blocking)")
    common(p)
    request(p)
    waiting(p)


def _print_json(doc: dict[str, Any]) -> None:
    print(json.dumps(doc, indent=2, ensure_ascii=False))


def run(args: argparse.Namespace) -> int:
    """Exit 0 done/COMPLETED, 1 FAILED or server trouble, 2 bad input."""
    # Here, not at the top: `worktree-runner test` starts without the HTTP client and the OpenHands
    # code (~40 ms of imports on the 2-CPU machine).
    from runner.openhands import OpenHandsError
    from runner.openhands.generation import (
        GenerationInputError,
        GenerationOptions,
        collect,
        make_generator,
        status,
        submit,
    )

    if not args.repo.is_dir():
        print(f"worktree-runner: error: --repo: {args.repo} is not a directory", file=sys.stderr)
        return 2
    try:
        setup = split_command(args.setup, what="--setup") if getattr(args, "setup", None) else None
    except ValueError as exc:
        print(f"worktree-runner: error: {exc}", file=sys.stderr)
        return 2
    options = GenerationOptions(
        workspace=args.repo.resolve(), url=args.url, backend=args.backend,
        test_timeout=getattr(args, "test_timeout", 600.0), setup_command=setup,
        test_reruns=getattr(args, "test_reruns", 3), existing_tests=getattr(args, "existing_test", []),
    )  # fmt: skip
    try:
        generator = make_generator(options)
        if args.subcommand in ("submit", "generate"):
            modules = args.module_path[0] if len(args.module_path) == 1 else args.module_path
            task_id = submit(generator, modules, args.output_path, args.coverage_threshold)
            if args.subcommand == "submit":
                print(task_id)
                return 0
            print(f"worktree-runner: submitted {task_id}", file=sys.stderr)
        else:
            task_id = args.task_id
        if args.subcommand == "status":
            _print_json(status(generator, task_id))
            return 0
        result = collect(generator, task_id, timeout=args.wait_timeout, poll_interval=args.poll_interval)
    except GenerationInputError as exc:
        print(f"worktree-runner: error: {exc}", file=sys.stderr)
        return 2
    except OpenHandsError as exc:
        print(f"worktree-runner: error: {generator.redact(str(exc))}", file=sys.stderr)
        return 1
    if args.result_json is not None:
        write_atomic(args.result_json, json.dumps(result, indent=2).encode() + b"\n")
    _print_json(result)
    if result["status"] != "COMPLETED":
        print(f"worktree-runner: FAILED: {result.get('reason')}", file=sys.stderr)
        return 1
    return 0
