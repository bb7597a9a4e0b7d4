"""Where archive files live: a small storage interface and its obstore implementation.

``open_storage`` takes ``HERALD_ARCHIVE_URL``: ``file:///abs/folder`` (created when
absent) or ``s3://bucket/prefix`` (an S3-compatible bucket; credentials, endpoint and
region come from the standard ``AWS_*`` environment variables that obstore reads:
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``AWS_REGION``,
``AWS_ALLOW_HTTP``). Both behave the same:

- ``put`` is atomic: a reader sees the whole object or none of it (a local file is
  written to a staging name and renamed; an S3 object appears whole on a single PUT).
  A put interrupted by a crash leaves nothing under the name (a local staging file
  ``<name>#<n>`` may remain; it is never listed). A local put is durable when it
  returns: the file and its folders are fsynced (obstore itself does not), so a power
  loss after the stream was trimmed cannot take the segment with it.
- ``get`` of a missing name raises ArchiveError saying "missing"; ``delete`` of one is
  a no-op; ``list`` gives the names under a string prefix relative to the storage
  root, sorted.
- Every other storage failure (network, permissions, bad bucket) is an ArchiveError
  naming the object and the storage URL.
"""

from __future__ import annotations

import asyncio
import builtins
import os
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import LocalStore, S3Store

from herald.streams.archive.errors import ArchiveError
from herald.streams.errors import SettingsError

URL_VARIABLE = "HERALD_ARCHIVE_URL"
LIST_CHUNK = 1000  # names per listing round trip (S3's own page size)
_FAILURES = (ObstoreError, OSError)


class Storage(Protocol):
    """A flat namespace of immutable objects named by ``/``-separated paths."""

    url: str

    async def put(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` atomically (replacing any object there)."""
        ...

    async def get(self, name: str) -> bytes:
        """The object's bytes; ArchiveError ("missing") when there is none."""
        ...

    async def list(self, prefix: str) -> builtins.list[str]:
        """Names starting with ``prefix`` (relative to the root), sorted."""
        ...

    async def delete(self, name: str) -> None:
        """Remove the object; a missing one is fine."""
        ...


class ObjectStorage:
    """:class:`Storage` over an obstore store (local folder or S3-compatible bucket)."""

    def __init__(self, url: str, store: Any, folder: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self.store = store
        self.folder = folder  # the root of a local store, whose puts are fsynced

    def where(self, name: str) -> str:
        return f"{self.url}/{name}"

    async def put(self, name: str, data: bytes) -> None:
        _check_name(name)
        try:
            # One PUT (up to S3's 5 GiB), never a multipart upload: a crash cannot
            # leave an unfinished upload behind in the bucket.
            await obstore.put_async(self.store, name, data, use_multipart=False)
            if self.folder is not None:
                await asyncio.to_thread(_sync, self.folder, name)
        except _FAILURES as exc:
            raise ArchiveError(self.where(name), f"cannot store: {_short(exc)}") from exc

    async def get(self, name: str) -> bytes:
        _check_name(name)
        try:
            result = await obstore.get_async(self.store, name)
            return bytes(await result.bytes_async())
        except FileNotFoundError as exc:
            raise ArchiveError(self.where(name), "missing") from exc
        except _FAILURES as exc:
            raise ArchiveError(self.where(name), f"cannot read: {_short(exc)}") from exc

    async def list(self, prefix: str) -> builtins.list[str]:
        # obstore lists whole path segments ("a/b" matches "a/b/c", not "a/bc"): list
        # the folder the prefix lies in and keep the names that start with it.
        folder = prefix.rpartition("/")[0]
        names: builtins.list[str] = []
        try:
            stream = obstore.list(self.store, folder or None, chunk_size=LIST_CHUNK)
            async for chunk in stream:
                names.extend(meta["path"] for meta in chunk if meta["path"].startswith(prefix))
        except FileNotFoundError:
            return []
        except _FAILURES as exc:
            raise ArchiveError(self.where(prefix + "*"), f"cannot list: {_short(exc)}") from exc
        return sorted(names)

    async def delete(self, name: str) -> None:
        _check_name(name)
        try:
            await obstore.delete_async(self.store, name)
        except FileNotFoundError:
            return
        except _FAILURES as exc:
            raise ArchiveError(self.where(name), f"cannot delete: {_short(exc)}") from exc


def open_storage(url: str) -> Storage:
    """The storage at ``url`` (``file:///abs/folder`` or ``s3://bucket/prefix``).

    Raises SettingsError naming ``HERALD_ARCHIVE_URL`` for any other URL, a relative or
    uncreatable folder, or an S3 configuration obstore refuses.
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
        if parts.netloc not in ("", "localhost") or not path.is_absolute():
            raise SettingsError(f"{URL_VARIABLE}={url!r}: a folder must be file:///absolute/path")
        try:
            path.mkdir(parents=True, exist_ok=True)
            return ObjectStorage(url, LocalStore(path), folder=path)
        except _FAILURES as exc:
            raise SettingsError(f"{URL_VARIABLE}={url!r}: {_short(exc)}") from exc
    if parts.scheme == "s3":
        if not parts.netloc:
            raise SettingsError(f"{URL_VARIABLE}={url!r}: a bucket must be s3://bucket/prefix")
        try:
            return ObjectStorage(url, S3Store.from_url(url))
        except _FAILURES as exc:
            raise SettingsError(f"{URL_VARIABLE}={url!r}: {_short(exc)}") from exc
    raise SettingsError(
        f"{URL_VARIABLE}={url!r}: expected file:///absolute/folder or s3://bucket/prefix"
    )


def _sync(root: Path, name: str) -> None:
    """fsync a stored file and every folder from its own up to ``root`` (the rename
    and any folder the put created are only durable once their folder is)."""
    path = root / name
    while True:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if path == root:
            return
        path = path.parent


def _check_name(name: str) -> None:
    if not name or name.startswith("/") or ".." in name.split("/"):
        raise ValueError(f"not a storage object name: {name!r}")


def _short(exc: BaseException) -> str:
    """obstore's message without its multi-line "Debug source" dump."""
    return str(exc).split("\n\nDebug source:", 1)[0].strip() or type(exc).__name__
