"""The GitHub Action face: the action's inputs in, GitHub's surfaces out, over the same run as the CLI.

``dispatch.main`` (what ``entrypoint.py`` calls) picks a mode; each ``mode_*`` module is one mode and
never imports another mode or ``dispatch``; what the modes share lives in ``workspace`` (paths inside
the workspace), ``reporting`` (outputs, annotations, summary, PR comment) and ``ownership``. May import
``runner.run``, ``runner.openhands``, ``runner.github``, ``runner.report``, ``runner.engine`` and
``runner.config``; never ``runner.cli``.
"""

from runner.action.dispatch import MODES, main

__all__ = ["MODES", "main"]
