"""python -m benchmarks.corpus: see benchmarks.corpus.cli."""

from benchmarks.corpus.cli import main

raise SystemExit(main())
