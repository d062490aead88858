"""The results of a run: the report object, the results JSON (schema 1) and JUnit XML."""

from __future__ import annotations

import json
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from runner.config import Status, TestExecutionResult
from runner.report.grading import best_by_tests, list_total

__all__ = ["SCHEMA_VERSION", "RunReport", "write_atomic", "write_junit", "write_results_json"]

SCHEMA_VERSION = 1


@dataclass
class RunReport:
    """Everything a run produced, in configuration order."""

    results: list[TestExecutionResult]
    succeed_if: Literal["all", "any"] = "all"
    duration_s: float = 0.0
    cancelled_by: str | None = None  # the reason the run was stopped early, if it was
    extra: dict[str, Any] = field(default_factory=dict)

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status is status)

    @property
    def succeeded(self) -> bool:
        # Cancelled hypotheses are not passes, so a stopped run fails "all" but can still meet "any".
        if self.succeed_if == "any":
            return self.count(Status.PASSED) > 0
        return bool(self.results) and all(r.status is Status.PASSED for r in self.results)

    @property
    def conclusion(self) -> Literal["success", "failure"]:
        return "success" if self.succeeded else "failure"

    @property
    def best(self) -> str | None:
        """With per-test grading, ``grading.best_by_tests``; else the passing hypothesis that finished
        fastest (configuration order breaks ties)."""
        baseline = self.extra.get("baseline")
        by_tests = best_by_tests(self.results, baseline if isinstance(baseline, str) else None)
        if by_tests is not None:
            return by_tests
        passing = [r for r in self.results if r.status is Status.PASSED]
        return min(passing, key=lambda r: r.duration_s).name if passing else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "conclusion": self.conclusion,
            "passed": self.count(Status.PASSED),
            "failed": self.count(Status.FAILED),
            "timed_out": self.count(Status.TIMEOUT),
            "errors": self.count(Status.ERROR),
            "cancelled": self.count(Status.CANCELLED),
            "best": self.best,
            "duration_s": round(self.duration_s, 3),
            "succeed_if": self.succeed_if,
            "stopped": self.cancelled_by,
            **self.extra,
            "results": [_result_dict(r) for r in self.results],
        }


def _result_dict(result: TestExecutionResult) -> dict[str, Any]:
    data = result.model_dump(mode="json")
    for key in ("tests", "cached"):  # additive keys: absent unless there is something to say
        if data.get(key) is None:
            data.pop(key, None)
    return data


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` so that readers see the old file or the whole new one, never a part."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_results_json(report: RunReport, path: str | os.PathLike[str]) -> Path:
    text = json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"
    return write_atomic(path, text.encode("utf-8"))


# XML 1.0 cannot carry these at all, escaped or not.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _XML_ILLEGAL.sub("\ufffd", text)


def junit_tree(report: RunReport, *, suite_name: str = "worktree-runner") -> ET.ElementTree:
    results: Sequence[TestExecutionResult] = report.results
    failures = report.count(Status.FAILED) + report.count(Status.TIMEOUT)
    errors = report.count(Status.ERROR)
    skipped = report.count(Status.CANCELLED)
    attrs = {
        "name": suite_name,
        "tests": str(len(results)),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": str(skipped),
        "time": f"{report.duration_s:.3f}",
    }
    root = ET.Element("testsuites", attrs)
    suite = ET.SubElement(root, "testsuite", attrs)
    for r in results:
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": suite_name, "name": _xml_text(r.name), "time": f"{r.duration_s:.3f}"},
        )
        props = ET.SubElement(case, "properties")
        for key in ("ref", "commit", "log_path"):
            value = getattr(r, key)
            if value:
                ET.SubElement(props, "property", {"name": key, "value": _xml_text(value)})
        for key, value in _tests_properties(r):
            ET.SubElement(props, "property", {"name": key, "value": _xml_text(value)})
        message = _xml_text(r.error or r.status.value)
        if r.status in (Status.FAILED, Status.TIMEOUT):
            node = ET.SubElement(case, "failure", {"message": message, "type": r.status.value})
            node.text = _xml_text(r.output_tail)
        elif r.status is Status.ERROR:
            node = ET.SubElement(case, "error", {"message": message, "type": "error"})
            node.text = _xml_text(r.output_tail)
        elif r.status is Status.CANCELLED:
            ET.SubElement(case, "skipped", {"message": message})
        if r.status is Status.PASSED and r.output_tail:
            ET.SubElement(case, "system-out").text = _xml_text(r.output_tail)
    ET.indent(root)
    return ET.ElementTree(root)


def _tests_properties(result: TestExecutionResult) -> list[tuple[str, str]]:
    """Per-test counts as ``tests.*`` properties (the same numbers as the results JSON)."""
    tests = result.tests
    if not tests or "passed" not in tests:
        return []
    props = [(f"tests.{k}", str(tests.get(k, 0))) for k in ("passed", "failed", "skipped")]
    if "fail_to_pass" in tests:
        props.append(("tests.baseline", str(tests.get("baseline", ""))))
        props += [
            (f"tests.{k}", str(list_total(tests, k)))
            for k in ("fail_to_pass", "pass_to_fail", "fail_to_fail")
        ]
        props.append(("tests.pass_to_pass", str(tests.get("pass_to_pass", 0))))
    props.append(("tests.flaky", str(list_total(tests, "flaky"))))
    return props


def write_junit(report: RunReport, path: str | os.PathLike[str]) -> Path:
    tree = junit_tree(report)
    root = tree.getroot()
    assert root is not None
    data = ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
    return write_atomic(path, data)
