"""`pharmload drop --tag T`: remove a dataset, its rows, its load history and its manifests, for good.

One transaction holds the tag's lock (a running load of the tag ends first, or with --lock-wait
fail the drop refuses) from the counting to the commit, so what the confirmation showed is exactly
what goes. Rows of PharmChecker's own tables follow their foreign keys: those with ON DELETE CASCADE
(match_scores) go with the rows, SET NULL / SET DEFAULT ones are cleared; a key without an ON DELETE
action that rows of this dataset use makes the drop refuse, naming the table, with nothing removed.
The tag's manifests (and their seals) are removed under the same lock, just before the commit: they
are caches, and one that outlived its dataset would only make the next load parse everything again.
Screenshots stay: `pharmload gc` removes those no dataset references any more.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loader.commands.record import recorded
from loader.db.cleanup import CleanupTransaction, Reference
from loader.db.target import database
from loader.errors import InUseError, LoadError, retry
from loader.metrics import write_cleanup_metrics
from loader.run import manifest
from loader.settings import Settings


@dataclass
class Plan:
    """What a drop of the tag removes, as counted under the tag's lock."""

    tag: str
    dataset_id: int | None = None
    rows: int = 0
    runs: int = 0
    images: int = 0             # screenshots the rows reference
    images_only_here: int = 0   # of those, referenced by no other dataset: a gc after the drop removes them
    references: list[Reference] = field(default_factory=list)
    manifests: list[tuple[Path, str]] = field(default_factory=list)  # (manifest file, its states folder)

    def render(self) -> str:
        if self.dataset_id is None:
            head = f"tag {self.tag!r}: no dataset in this database"
        else:
            head = (f"tag {self.tag!r} (dataset {self.dataset_id}): {self.rows:,} rows of search_results, "
                    f"{self.runs:,} of load_runs")
        lines = [head]
        lines += [f"  {r.rows:,} rows of {r.table} ({r.action})" for r in self.references if r.rows]
        lines += [f"  manifest {path} (states folder {states})" for path, states in self.manifests]
        if self.dataset_id is not None:
            lines.append(f"  screenshots: {self.images:,} referenced, {self.images_only_here:,} of them by no other "
                         "dataset (left in the store: `pharmload gc` removes them)")
        return "\n".join(lines)


@dataclass
class Outcome:
    """What a drop did: status dropped, dry-run, cancelled, absent (nothing to drop) or failed."""

    plan: Plan
    dry_run: bool
    status: str = "running"
    removed: dict[str, int] = field(default_factory=dict)  # rows per table
    manifests_removed: list[str] = field(default_factory=list)
    error: str | None = None
    elapsed: float = 0.0

    def render(self) -> str:
        if self.status == "dry-run":
            return "dry run: nothing was removed"
        if self.status == "cancelled":
            return "not confirmed: nothing was removed"
        if self.status == "absent":
            return f"tag {self.plan.tag!r}: no dataset and no manifest; nothing to remove"
        rows = ", ".join(f"{t} {n:,}" for t, n in self.removed.items())
        return (f"dropped tag {self.plan.tag!r}: rows removed: {rows or 'none'}; manifests removed: "
                f"{len(self.manifests_removed)}. `pharmload gc` deletes the screenshots no dataset references now.")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["plan"]["manifests"] = [{"file": str(p), "states_dir": s} for p, s in self.plan.manifests]
        return data


def drop(settings: Settings, confirm: Callable[[Plan], bool]) -> Outcome:
    """Drop settings.tag, asking `confirm` (once, with the plan) before anything is removed; a
    dry run only counts. Writes --report-json and --metrics-file, failed or not."""
    tag = settings.tag or ""
    out = Outcome(Plan(tag), settings.dry_run)
    answer: list[bool] = []  # asked once, even when a transient error makes the drop try again

    def asked(plan: Plan) -> bool:
        if not answer:
            answer.append(confirm(plan))
        return answer[0]

    def metrics(path: Path) -> None:
        if out.status in ("dropped", "failed"):
            write_cleanup_metrics(path, "drop", out.status == "dropped", time.time(), rows=out.removed,
                                  dropped_tag=tag if out.status == "dropped" else None)

    with recorded(settings, out, metrics), database(settings) as dsn:
        retry(lambda: _attempt(settings, dsn, out, asked), attempts=settings.retries,
              base_delay=settings.retry_delay, what="drop")
    return out


def _attempt(settings: Settings, dsn: str, out: Outcome, confirm: Callable[[Plan], bool]) -> None:
    tag = settings.tag or ""
    tx = CleanupTransaction(dsn, settings.secrets)
    try:
        plan = out.plan = Plan(tag)
        if tx.has_schema():
            tx.lock_tag(tag, settings.lock_wait)
            plan.dataset_id = tx.dataset_id(tag)
        if plan.dataset_id is not None:
            counts = tx.drop_counts(plan.dataset_id)
            plan.rows, plan.runs = counts["rows"], counts["runs"]
            plan.images, plan.images_only_here = counts["images"], counts["images_only_here"]
            plan.references = tx.references(plan.dataset_id)
        plan.manifests = manifest.of_tag(settings.manifest_dir, tag)
        blocking = [r for r in plan.references if r.blocks]
        if blocking:
            raise InUseError("; ".join(
                f"{r.rows:,} rows of table {r.table} refer to rows of tag {tag!r} through foreign key "
                f"{r.constraint}, which has no ON DELETE action" for r in blocking)
                + ": nothing was removed. Delete those rows first, or make the key ON DELETE CASCADE.")
        if settings.dry_run:
            out.status = "dry-run"
            return
        if plan.dataset_id is None and not plan.manifests:
            out.status = "absent"
            return
        if not confirm(plan):
            out.status = "cancelled"
            return
        if plan.dataset_id is not None:
            deleted = tx.drop_dataset(plan.dataset_id)
            out.removed = {"search_results": deleted["rows"], "load_runs": deleted["runs"],
                           **{r.table: r.rows for r in plan.references if r.on_delete == "c"},
                           "datasets": deleted["datasets"]}
        out.manifests_removed = _remove_manifests(plan.manifests)
        tx.commit()
        out.status = "dropped"
    finally:
        tx.close()


def _remove_manifests(manifests: list[tuple[Path, str]]) -> list[str]:
    """Remove the manifest files and their seals (unchanged.seal_path: the manifest's name with
    .seal.json); the manifest files removed."""
    removed = []
    for path, _ in manifests:
        try:
            path.with_suffix(".seal.json").unlink(missing_ok=True)
            path.with_suffix(".digests.parquet").unlink(missing_ok=True)  # --verify-writes' digests
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise LoadError(f"cannot remove manifest {path}: {exc.strerror or exc}; nothing was dropped") from exc
        removed.append(str(path))
    return removed
