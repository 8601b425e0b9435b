"""pharmload: load a pharmacy license scrape into PharmChecker's database, fast and exactly once.

The library API is `loader.run.pipeline.run(settings)` with a `loader.settings.Settings`; the
`pharmload` command is a thin layer over it.
"""
