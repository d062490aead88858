"""The engine's machinery: worktrees, process groups and kills, scheduling, event loop, signals, names, git.

What runs hypotheses and cleans up after them, with no idea of how results are reported or who asked.
May import ``runner.config`` and the standard library; never ``runner.report``, ``runner.github``,
``runner.openhands``, ``runner.run`` or a face (``runner.cli``, ``runner.action``).
"""
