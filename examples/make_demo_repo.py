"""Create a small git repository with competing fixes for a bug, ready for worktree-runner.

The repository holds a tiny package ``calc`` whose ``mean()`` crashes on an empty list, a pytest
test for it, and four hypotheses: the unfixed baseline, two candidate fixes on branches (one right,
one wrong), a fix as a patch file, and a slow one that hits its timeout.

usage: python examples/make_demo_repo.py DIR
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ENV = {**os.environ, "GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@example.invalid",
       "GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": "demo@example.invalid"}  # fmt: skip


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env=ENV, check=True, capture_output=True)


def write(repo: Path, path: str, text: str) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(textwrap.dedent(text).lstrip())


def main(directory: str) -> None:
    repo = Path(directory).resolve()
    if repo.exists() and any(repo.iterdir()):
        sys.exit(f"make_demo_repo: {repo} exists and is not empty")
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q", "-b", "main")
    write(repo, "calc/__init__.py", """
        def mean(values):
            return sum(values) / len(values)
    """)
    write(repo, "tests/test_calc.py", """
        from calc import mean

        def test_mean():
            assert mean([1, 2, 3]) == 2
            assert mean([1, 2]) == 1.5

        def test_mean_of_nothing_is_zero():
            assert mean([]) == 0
    """)
    write(repo, "worktree-runner.yml", f"""
        # Which candidate fix makes the tests pass?
        command: ["{sys.executable}", "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        timeout: 60
        max-parallel: 4
        succeed-if: any
        hypotheses:
          - name: baseline
            ref: main
          - name: fix-guard
            ref: fix/guard
          - name: fix-wrong
            ref: fix/wrong
          - name: fix-as-patch
            patch: patches/fix.diff
          - name: fix-too-slow
            ref: fix/guard
            command: ["sleep", "30"]
            timeout: 2
    """)
    write(repo, "patches/fix.diff", """
        --- a/calc/__init__.py
        +++ b/calc/__init__.py
        @@ -1,2 +1,2 @@
         def mean(values):
        -    return sum(values) / len(values)
        +    return sum(values) / len(values) if values else 0
    """)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "calc with a bug")
    for branch, body in (
        ("fix/guard", "    if not values:\n        return 0\n    return sum(values) / len(values)\n"),
        ("fix/wrong", "    return sum(values) // max(len(values), 1)\n"),
    ):
        git(repo, "checkout", "-q", "-b", branch, "main")
        (repo / "calc/__init__.py").write_text("def mean(values):\n" + body)
        git(repo, "commit", "-q", "-am", branch)
    git(repo, "checkout", "-q", "main")
    print(repo)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
