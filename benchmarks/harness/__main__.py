"""python -m benchmarks.harness: see benchmarks.harness.cli."""

from benchmarks.harness.cli import main

raise SystemExit(main())
