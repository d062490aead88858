"""The instruction the agent gets. Paths in it were validated (check_relative_path) beforehand."""

from __future__ import annotations

__all__ = ["build_prompt", "build_title"]


def build_prompt(module_path: str, output_path: str, threshold: float, include: str) -> str:
    return (
        f"Write pytest unit tests for the Python module `{module_path}` of this repository.\n\n"
        f"- Put all of them in ONE new file: `{output_path}` (create missing directories).\n"
        f"- Goal: at least {threshold:g}% line coverage of `{module_path}`, as measured from the repository "
        f"root by `python -m coverage run {include} -m pytest {output_path}` followed by "
        "`python -m coverage report`.\n"
        "- Every test must pass. Do not change any existing file; only add the test file.\n"
        "- Use pytest, the standard library and the project's existing dependencies only.\n"
        "- Run the tests and the coverage command yourself before you finish.\n"
        "- When done, finish with a short summary that states the coverage you measured.\n"
    )


def build_title(module_path: str) -> str:
    return f"worktree-runner: unit tests for {module_path}"[:120]
