"""The local store's copy (clone, in-kernel copy, or read and write) and its sync, on real files."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from loader.errors import StorageError
from loader.stores import objects
from loader.stores.local import BLOCK, LocalStore, storage_path
from tests.scrape import png


@pytest.mark.parametrize("filler", [b"", b"x" * (3 * BLOCK + 5)])
def test_copy_is_a_file_of_its_own_with_the_same_bytes(tmp_path: Path, filler: bytes) -> None:
    src = tmp_path / "scrape" / "a.png"
    src.parent.mkdir()
    src.write_bytes(png(filler=filler))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    store = LocalStore(tmp_path / "store")  # copy is the default
    assert store.put(digest, str(src)) is True
    assert store.put(digest, str(src)) is False  # already there: never written again
    stored = tmp_path / "store" / storage_path(digest)
    assert stored.read_bytes() == src.read_bytes()
    assert stored.stat().st_ino != src.stat().st_ino
    assert sorted(p.name for p in stored.parent.iterdir()) == [stored.name]  # no temporary left
    store.sync()


def test_read_and_write_when_neither_clone_nor_in_kernel_copy_can(tmp_path: Path) -> None:
    """A source the kernel cannot clone or copy_file_range from (a pipe) still copies, whole."""
    data = b"p" * (2 * BLOCK + 11)
    read_end, write_end = os.pipe()

    def write() -> None:
        os.write(write_end, data)
        os.close(write_end)

    writer = threading.Thread(target=write)
    writer.start()
    out = tmp_path / "out"
    with open(out, "wb") as f:
        objects.clone_into(read_end, f.fileno(), len(data))
    writer.join()
    os.close(read_end)
    assert out.read_bytes() == data


def test_link_mode_shares_the_scrape_file(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    src.write_bytes(png())
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    LocalStore(tmp_path / "store", link=True).put(digest, str(src))
    assert (tmp_path / "store" / storage_path(digest)).stat().st_ino == src.stat().st_ino


def test_sync_of_a_store_not_yet_made_is_nothing_to_do(tmp_path: Path) -> None:
    LocalStore(tmp_path / "never-written").sync()
    assert not (tmp_path / "never-written").exists()


def test_a_source_rewritten_between_hashing_and_copying_fails_and_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    src.write_bytes(png(filler=b"as hashed"))
    hashed = hashlib.sha256(src.read_bytes()).hexdigest()
    st = src.stat()
    store = LocalStore(tmp_path / "store")
    store.check_sources([(hashed, str(src), st.st_size, st.st_mtime_ns)])  # nothing stored yet: nothing to say
    src.write_bytes(png(filler=b"rewritten by the scraper before the copy"))
    store.put(hashed, str(src))  # the copy takes the new bytes under the old hash's name
    with pytest.raises(StorageError, match=r"a\.png changed while this load was reading it"):
        store.check_sources([(hashed, str(src), st.st_size, st.st_mtime_ns)])
    assert not (tmp_path / "store" / storage_path(hashed)).exists()


def test_a_touched_source_whose_copy_is_right_passes(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    src.write_bytes(png())
    hashed = hashlib.sha256(src.read_bytes()).hexdigest()
    st = src.stat()
    store = LocalStore(tmp_path / "store")
    store.put(hashed, str(src))
    os.utime(src, ns=(1, 1))
    store.check_sources([(hashed, str(src), st.st_size, st.st_mtime_ns)])
    assert (tmp_path / "store" / storage_path(hashed)).read_bytes() == src.read_bytes()


def test_a_load_of_many_screenshots_leaves_each_whole_and_no_temporary(tmp_path: Path) -> None:
    """The remembered folders and copy ways: the second screenshot of a folder, and every one
    after the first unsupported clone, still lands whole; a folder removed meanwhile is made again;
    a temporary name a crashed process left behind does not stop the copy."""
    sources = []
    for i in range(300):
        src = tmp_path / "scrape" / f"{i}.png"
        src.parent.mkdir(exist_ok=True)
        src.write_bytes(png(filler=str(i).encode() * 50))
        sources.append((hashlib.sha256(src.read_bytes()).hexdigest(), str(src), "image/png"))
    store = LocalStore(tmp_path / "store")
    assert store.store_many(sources[:150]) == (150, {})
    gone = tmp_path / "store" / storage_path(sources[200][0])
    gone.parent.mkdir(parents=True, exist_ok=True)
    store.put(sources[200][0], sources[200][1])
    gone.unlink()
    gone.parent.rmdir()  # removed by hand while the load runs
    stale = gone.parent / f".{gone.name}.{os.getpid()}.{threading.get_ident()}"
    gone.parent.mkdir()
    stale.write_bytes(b"left by a crash")
    assert store.store_many(sources) == (150, {})
    for h, path, _ in sources:
        assert (tmp_path / "store" / storage_path(h)).read_bytes() == Path(path).read_bytes()
    left = [p for p in (tmp_path / "store").rglob(".*") if p.is_file()]
    assert left == [stale]


@pytest.mark.parametrize(("kind", "expected"), [("btrfs", True), ("xfs", True), ("ext4", False), ("tmpfs", False)])
def test_a_store_that_can_clone_its_sources_leaves_storing_to_the_store_thread(tmp_path: Path, kind: str,
                                                                              expected: bool) -> None:
    """On a copy-on-write file system the store thread clones (no second copy of the bytes); elsewhere
    the workers write the bytes they hashed. The mount table decides: the deepest mount point holding
    the store, and the source on the same device."""
    mounts = tmp_path / "mounts"
    mounts.write_text(f"proc /proc proc rw 0 0\n/dev/vdb / {kind} rw 0 0\n")
    assert objects.clones(str(tmp_path), str(tmp_path / "store" / "not-yet"), str(mounts)) is expected
    deeper = tmp_path / "mounts-deeper"
    deeper.write_text(f"/dev/vdb / btrfs rw 0 0\n/dev/vdc {tmp_path} {kind} rw 0 0\n")
    assert objects.clones(str(tmp_path), str(tmp_path / "store"), str(deeper)) is expected
