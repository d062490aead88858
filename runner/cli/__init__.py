"""The command-line face: ``worktree-runner test|merge|submit|status|collect|generate``.

``commands`` holds the parser, ``test`` and ``merge``; ``openhands`` the OpenHands subcommands;
``arguments`` the argparse value converters. May import ``runner.run``, ``runner.openhands``,
``runner.report``, ``runner.engine`` and ``runner.config``; never ``runner.action`` or ``runner.github``
(GitHub's surfaces belong to the action). The console script is ``runner.cli:main``.
"""

from runner.cli.commands import build_parser, main

__all__ = ["build_parser", "main"]
