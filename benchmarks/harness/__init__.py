"""Benchmark harness: pharmload against the old importer's way, dlt, and the hardware floor.

    python -m benchmarks.harness --profile realistic --sizes 515:100000,20000:20000 --runs 3 --skip-slow

One PostgreSQL server (the embedded one, `loader.db.embedded.start`) is started in
``--work-dir``/pgdata (default ``/var/tmp/pharmload-bench-<uid>``) and kept for the whole run; every
timed run gets a database of its own (``CREATE DATABASE``), dropped once its end state is checked.
Each contender is timed as a whole process, interpreter start to exit, by a tiny launcher process
(``LAUNCHER``) that forks and execs it: wall clock from fork to ``os.wait4``; CPU seconds from the
launcher's ``getrusage(RUSAGE_CHILDREN)`` (the launcher is a child subreaper, so processes the
contender leaves behind, such as multiprocessing's forkserver and its workers, are reaped there and
their CPU counts too); peak RSS is ``ru_maxrss`` from ``wait4`` (the largest single process of the
contender's tree). A thread in the harness samples every 50 ms (psutil) the summed RSS of the
contender's process tree and of every process of the server (the postmaster and its children),
and keeps the peaks; the server's CPU seconds are read before and after, and so is /proc/stat, for
the share of all the machine's cores busy during the run.

Contenders (``--contenders``): ``pharmload`` (``python -m loader load --backend postgresql``; scenarios
``first`` = empty tag, ``rerun`` = the same tree again with its manifest, ``incremental`` = one more
day added with ``benchmarks.corpus.add_day``, each on a fresh hard-linked copy of the corpus),
``baseline`` (benchmarks/baseline.py, the old importer's way), ``dlt`` (benchmarks/dlt_runner.py) and
``floor`` (benchmarks/floor.py: ``read`` = read every byte and SHA-256 every screenshot, ``copy`` =
``psql \\copy`` of the final rows + pharmload's merge). Before a run's time counts, its end state is
checked: the ``search_results`` key set and row count must equal the corpus generator's expectation
and pharmload's (and, for the contenders that write the same table, a digest of every column and of
``image_assets``); a mismatch stops the benchmark with exit code 1.

Corpora (``--profile``: realistic, the default, or repeats) are generated once into ``--corpus-dir``
(default ``/var/tmp/pharmload-bench-corpus``) as ``<profile>-v<CORPUS_VERSION>-<files>-<image
bytes>-<seed>`` and reused. Results: a Markdown table and a JSON file (and a PNG plot) in
``--results-dir`` (default ``benchmarks/results/raw``, ignored by git), named by date and sizes; with
``--update-results``, also benchmarks/RESULTS.md (``results``). The targets of issue 16 are judged in
``targets``.

Modules: ``common`` (names, errors, the log), ``corpora`` (the corpus cache and its expectations),
``server`` (the PostgreSQL server), ``measure`` (one whole process, measured), ``endstate`` (the
checks of what a contender left), ``contenders`` (the contenders and scenarios), ``summary``
(medians and ratios), ``targets`` (the verdicts), ``report`` (Markdown and the raw files), ``run``
(one benchmark, start to end), ``results`` (benchmarks/RESULTS.md), ``cli``.
"""

from __future__ import annotations
