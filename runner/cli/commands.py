"""``worktree-runner`` command line: the parser, ``test`` and ``merge`` (OpenHands: ``openhands``)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from runner import __version__
from runner.cli import openhands as cli_openhands
from runner.cli.arguments import float_arg, positive_int
from runner.config import ConfigError, RunnerConfig, load_config
from runner.engine import signals
from runner.engine.naming import display_name
from runner.report.live import LiveStatus, wants_live_status
from runner.report.progress import progress_printer
from runner.report.results import RunReport
from runner.report.sharding import ShardSpec, ShardSpecError, parse_shard
from runner.run import EXIT_BAD_INPUT, RunOptions, execute, exit_code_for, write_reports

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 too; keep it to one line
        self.exit(EXIT_BAD_INPUT, f"worktree-runner: error: {message}\n")


_positive_int = positive_int
_positive_float = float_arg("a number of seconds", lambda v: v > 0, "> 0")


def _shard(text: str) -> ShardSpec:
    try:
        return parse_shard(text)
    except ShardSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="worktree-runner", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="subcommand", required=True, parser_class=_Parser)
    test = sub.add_parser("test", help="run every hypothesis in its own worktree, in parallel")
    test.add_argument("--config", required=True, type=Path, help="YAML configuration file")
    test.add_argument("--repo", type=Path, default=Path("."), help="git repository (default: .)")
    test.add_argument("--max-parallel", type=_positive_int, help="override max-parallel")
    test.add_argument("--timeout", type=_positive_float, help="override the per-hypothesis timeout (seconds)")
    test.add_argument("--fail-fast", action="store_true", default=None, help="stop at the first failure")
    test.add_argument("--succeed-if", choices=("all", "any"), help="override succeed-if")
    test.add_argument("--results-json", type=Path, help="write the results JSON (schema 1) here")
    test.add_argument("--junit", type=Path, help="write JUnit XML here")
    test.add_argument("--logs-dir", type=Path, help="directory for one log file per hypothesis")
    test.add_argument(
        "--durations", type=Path, help="results JSON of an earlier run: start the longest hypotheses first"
    )
    test.add_argument("--shard", type=_shard, metavar="K/N", help="run only shard K of N (1-based, N <= 256)")
    test.add_argument(
        "--isolation", choices=("venv", "none"),
        help="venv (default): each hypothesis in a virtualenv of its own over python3; none: the shared one",
    )  # fmt: skip
    test.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    test.add_argument(
        "--cache-dir", type=Path, help="result cache: skip hypotheses whose tree, command, settings are known"
    )
    test.add_argument("--no-cache", action="store_true", help="ignore --cache-dir: run all, store nothing")
    cli_openhands.add_parsers(sub)
    merge = sub.add_parser("merge", help="combine the results JSON files of the shards of one run")
    merge.add_argument("files", nargs="+", type=Path, metavar="FILES", help="one results JSON per shard")
    merge.add_argument("--results-json", type=Path, help="write the merged results JSON (schema 1) here")
    merge.add_argument("--junit", type=Path, help="write the merged JUnit XML here")
    merge.add_argument("-q", "--quiet", action="store_true", help="no line per shard")
    return parser


def apply_overrides(config: RunnerConfig, **overrides: object) -> RunnerConfig:
    """A copy of ``config`` with the given (non-None) settings replaced, validated again."""
    data = config.model_dump(by_alias=False, exclude_unset=False)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return RunnerConfig.model_validate(data)


def _conclusion_line(report: RunReport) -> str:
    d = report.to_dict()
    best = f"; best: {display_name(d['best'])}" if d["best"] else ""
    stopped = f" ({display_name(report.cancelled_by)})" if report.cancelled_by else ""
    return (
        f"worktree-runner: {d['conclusion']}{stopped} - passed {d['passed']}, failed {d['failed']}, "
        f"timed out {d['timed_out']}, errors {d['errors']}, cancelled {d['cancelled']} "
        f"in {d['duration_s']:.1f}s{best}"
    )


def cmd_test(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        config = apply_overrides(
            config,
            max_parallel=args.max_parallel,
            timeout=args.timeout,
            fail_fast=args.fail_fast,
            succeed_if=args.succeed_if,
            isolation=args.isolation,
        )
    except ValueError as exc:  # pydantic re-validation of CLI values
        raise ConfigError(str(exc).splitlines()[0], source="command line") from None
    # A terminal gets a status line redrawn in place; a log (CI) keeps one line per result.
    live = LiveStatus(sys.stderr) if not args.quiet and wants_live_status(sys.stderr) else None
    options = RunOptions(
        repo=args.repo,
        results_json=args.results_json,
        junit=args.junit,
        logs_dir=args.logs_dir,
        durations_file=args.durations,
        shard=args.shard,
        progress=None if args.quiet else progress_printer(),  # type: ignore[arg-type]
        cache_dir=None if args.no_cache else args.cache_dir,
    )
    if live is not None:
        options.progress, options.on_start = live.finished, live.started
    with live or contextlib.nullcontext():
        report = execute(config, options, source=str(args.config))
    fetched = report.extra.get("fetched")
    if isinstance(fetched, dict) and fetched.get("refs"):  # explains a slow start
        print(f"fetched from {fetched['remote']}: {', '.join(map(str, fetched['refs']))}", file=sys.stderr)
    print(_conclusion_line(report), file=sys.stderr)
    return exit_code_for(report)


def cmd_merge(args: argparse.Namespace) -> int:
    from runner.report.merge import MergeError, merge_files

    for flag, path in (("--results-json", args.results_json), ("--junit", args.junit)):
        if path is not None and path.is_dir():
            raise ConfigError(f"{path} is a directory, expected a file path", source=flag)
    try:
        report = merge_files(args.files, source="FILES")
    except MergeError as exc:
        for problem in exc.problems:
            print(f"worktree-runner: error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.quiet:
        for shard in report.extra["merged"]["shards"]:
            print(
                f"shard {shard['index']}/{report.extra['merged']['total']}: {display_name(shard['file'])}: "
                f"{shard['results']} results, {shard['conclusion']} in {shard['duration_s']:.1f}s",
                file=sys.stderr,
            )
    write_reports(report, RunOptions(results_json=args.results_json, junit=args.junit))
    print(_conclusion_line(report), file=sys.stderr)
    return exit_code_for(report)


def main(argv: Sequence[str] | None = None) -> int:
    signals.install()
    logging.basicConfig(level=logging.WARNING, format="worktree-runner: %(message)s")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    try:
        if args.subcommand == "test":
            return cmd_test(args)
        if args.subcommand in cli_openhands.SUBCOMMANDS:
            return cli_openhands.run(args)
        if args.subcommand == "merge":
            return cmd_merge(args)
    except ConfigError as exc:
        print(f"worktree-runner: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
