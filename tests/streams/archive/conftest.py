"""Archive fixtures: a local S3-compatible server (moto) for the bucket tests, archive
storage in a fresh folder or bucket prefix per test, and a partition log to archive."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from herald.streams.archive.segments import SegmentStore
from herald.streams.archive.storage import Storage, open_storage
from herald.streams.keys import Keys
from herald.streams.settings import Settings

BUCKET = "herald-archive-tests"
S3_SECRETS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a moto S3 server holding :data:`BUCKET`."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              **S3_SECRETS)
        client.create_bucket(Bucket=BUCKET)
        client.close()
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The AWS_* variables obstore reads, pointing at the moto server, for one test."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_SECRETS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRETS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # never through a proxy
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return s3_endpoint


def folder_url(tmp_path: Path) -> str:
    return (tmp_path / "archive").as_uri()


@pytest.fixture(params=["file", "s3"])
def archive_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh archive root: a folder, or a prefix of the moto bucket."""
    if request.param == "file":
        return folder_url(tmp_path)
    request.getfixturevalue("s3_env")
    return f"s3://{BUCKET}/{uuid.uuid4().hex}"


@pytest.fixture
def storage(archive_url: str) -> Storage:
    return open_storage(archive_url)


@pytest.fixture
def local_storage(tmp_path: Path) -> Storage:
    """A folder archive, for tests about Redis and files rather than the storage."""
    return open_storage(folder_url(tmp_path))


@pytest.fixture
def store(local_storage: Storage) -> SegmentStore:
    return SegmentStore(local_storage)


@pytest.fixture
def keys(settings: Settings) -> Keys:
    return Keys(settings.prefix)


@pytest.fixture
def archive_root(tmp_path: Path) -> Path:
    """The folder behind :func:`local_storage`."""
    return tmp_path / "archive"
