"""Reports of a run: results JSON (schema 1) and JUnit, progress lines and the live status line, start
times, shard plans, merging shards.

Turns results into documents and back; runs nothing. May import ``runner.config`` and
``runner.engine`` (names); never ``runner.github``, ``runner.openhands``, ``runner.run`` or a face.
"""
