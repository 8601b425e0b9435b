"""The loader's start-up: its worker processes started before its own imports, when the load will
surely use them, and its heavy imports kept out of the garbage collector's reach.

The workers (a forkserver that imports polars, then forks) take ~0.3 s to start; started before
the loader imports polars and psycopg, that start-up overlaps the imports instead of delaying the
first chunk. But on two cores the extra interpreter costs a load that never uses it ~0.1 s of a
0.7 s run (measured on the 515-file corpus and on a 20,000-file re-run), so the head start is taken
only where workers are certain: a first load (no manifest yet, or --full) of more than one chunk of
search files. Any other load starts its pool, if the plan asks for one, when the plan is known.

Deliberately light: it runs before polars is imported, so it counts with os.scandir.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from loader.run import workers
from loader.scan.walk import JSON_SUFFIX

if TYPE_CHECKING:
    from pathlib import Path

    from loader.settings import Settings

def start_workers(settings: Settings) -> bool:
    """Start the worker processes now if this load will surely use them; whether it did."""
    if settings.workers <= 1 or settings.single_file is not None:
        return False
    if not settings.full and settings.manifest_file.exists():
        return False  # a re-run or an incremental load: only the manifest knows how much is left
    if not more_search_files_than(settings.tree, settings.chunk_files):
        return False
    workers.start_early()
    return True


def more_search_files_than(root: Path, limit: int) -> bool:
    """Whether more than `limit` search files lie below root (stops counting there)."""
    count = 0
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.name.endswith(JSON_SUFFIX):
                        count += 1
                        if count > limit:
                            return True
                    elif entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return False
