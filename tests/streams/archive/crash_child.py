"""Archiver child of the crash test: archives one partition step by step until done.

Usage: ``python crash_child.py REDIS_URL PREFIX ARCHIVE_URL PARTITION SEGMENT_ENTRIES
UPTO...``; prints ``ready`` once connected, then archives up to each UPTO in turn.
The parent kills it with SIGKILL at random moments and runs it again.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path


async def main(argv: list[str]) -> None:
    from herald.streams.archive.archiver import Archiver
    from herald.streams.archive.segments import SegmentStore
    from herald.streams.archive.storage import open_storage
    from herald.streams.connection import connect
    from herald.streams.keys import Keys
    from herald.streams.settings import Settings

    redis_url, prefix, archive_url, partition, size, *uptos = argv
    with tempfile.TemporaryDirectory() as data:
        settings = Settings.from_env({}, redis_url=redis_url, prefix=prefix,
                                     data_dir=Path(data), log_format="console")
        redis = connect(settings)
        try:
            archiver = Archiver(redis, Keys(prefix), SegmentStore(open_storage(archive_url)))
            await redis.ping()
            print("ready", flush=True)
            for upto in uptos:
                await archiver.archive(int(partition), upto, segment_entries=int(size))
        finally:
            await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
