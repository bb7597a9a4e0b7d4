"""Storage: a local folder and an S3-compatible bucket behave the same."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from herald.streams.archive.errors import ArchiveError
from herald.streams.archive.storage import Storage, open_storage
from herald.streams.errors import SettingsError


async def test_put_get_list_delete(storage: Storage) -> None:
    await storage.put("segments/p0001/b.seg", b"bee")
    await storage.put("segments/p0001/a.seg", b"\x00\xff" * 1000)
    await storage.put("segments/p00012/c.seg", b"sea")
    await storage.put("snapshots/x", b"")
    assert await storage.get("segments/p0001/a.seg") == b"\x00\xff" * 1000
    assert await storage.get("snapshots/x") == b""
    assert await storage.list("segments/p0001/") == ["segments/p0001/a.seg",
                                                      "segments/p0001/b.seg"]
    # a plain string prefix, not only whole folders
    assert await storage.list("segments/p0001") == ["segments/p0001/a.seg",
                                                     "segments/p0001/b.seg",
                                                     "segments/p00012/c.seg"]
    assert await storage.list("segments/p0001/b") == ["segments/p0001/b.seg"]
    assert await storage.list("") == ["segments/p0001/a.seg", "segments/p0001/b.seg",
                                      "segments/p00012/c.seg", "snapshots/x"]
    assert await storage.list("nothing/here/") == []
    await storage.delete("segments/p0001/a.seg")
    await storage.delete("segments/p0001/a.seg")  # missing is fine
    assert await storage.list("segments/") == ["segments/p0001/b.seg", "segments/p00012/c.seg"]


async def test_put_replaces_whole_object(storage: Storage) -> None:
    await storage.put("obj", b"x" * 100_000)
    await storage.put("obj", b"short")
    assert await storage.get("obj") == b"short"


async def test_missing_object_raises_archive_error_saying_missing(storage: Storage) -> None:
    with pytest.raises(ArchiveError, match="missing") as caught:
        await storage.get("segments/p0002/gone.seg")
    assert "segments/p0002/gone.seg" in str(caught.value)
    assert storage.url in str(caught.value)


async def test_concurrent_readers_see_whole_objects(storage: Storage) -> None:
    """A reader racing a writer sees the old object, the new one or nothing; never part."""
    versions = {bytes([v]) * 200_000 for v in range(5)}

    async def write() -> None:
        for data in sorted(versions):
            await storage.put("race", data)

    async def read() -> None:
        for _ in range(20):
            try:
                assert await storage.get("race") in versions
            except ArchiveError as exc:
                assert "missing" in str(exc)

    await asyncio.gather(write(), read(), read())


@pytest.mark.parametrize("name", ["", "/abs", "a/../b"])
async def test_bad_names_are_refused(storage: Storage, name: str) -> None:
    with pytest.raises(ValueError, match="name"):
        await storage.put(name, b"x")


def test_file_url_creates_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er"
    storage = open_storage(target.as_uri())
    assert target.is_dir()
    assert storage.url == target.as_uri()


@pytest.mark.parametrize("url", ["", "memory:///", "gs://bucket/x", "http://host/x",
                                 "file://relative/x", "s3://", "/plain/path"])
def test_other_urls_raise_settings_error_naming_the_variable(url: str) -> None:
    with pytest.raises(SettingsError, match="HERALD_ARCHIVE_URL"):
        open_storage(url)


async def test_unreachable_bucket_raises_archive_error(
    s3_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = open_storage("s3://no-such-bucket/x")
    with pytest.raises(ArchiveError, match="no-such-bucket"):
        await storage.put("a", b"b")
