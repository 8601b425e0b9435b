"""Running a load: the stage order (pipeline.py), what happens to each chunk (stream.py), the worker
pool and its lanes, the manifest that makes re-runs cheap, and the unchanged re-run."""
