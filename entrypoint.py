"""Docker action entry point: the action's inputs go through the same code path as the CLI."""

from runner.action import main

raise SystemExit(main())
