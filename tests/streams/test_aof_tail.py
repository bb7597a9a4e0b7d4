"""A power loss's unfinished transaction at the end of the append-only file is removed
before the server starts, so commands the server discarded never come back."""

from __future__ import annotations

from pathlib import Path

import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.streams import aof_tail
from herald.streams.aof_tail import MULTI, drop_torn_transaction, last_incr_file, parse
from herald.streams.server import start_server

STREAM = "herald:{p00}:log"


def resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def _entries(url: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    try:
        return [f[b"e"] for _, f in client.xrange(STREAM)]
    finally:
        client.close()


def test_a_discarded_transaction_does_not_come_back_two_starts_later(tmp_path: Path) -> None:
    handle = start_server(tmp_path, appendfsync="always", die_with_parent=True)
    try:
        redis.Redis.from_url(handle.url).xadd(STREAM, {"e": "kept"})
    finally:
        handle.stop()
    incr = last_incr_file(tmp_path)
    assert incr is not None and incr.is_file()
    with incr.open("ab") as f:  # a power loss in the middle of a script's block
        f.write(MULTI + resp(b"XADD", STREAM.encode(), b"*", b"e", b"ghost")
                + resp(b"HSET", b"herald:{p00}:idem", b"k", b"v")[:-7])
    handle = start_server(tmp_path, appendfsync="always", die_with_parent=True)
    try:
        assert _entries(handle.url) == [b"kept"]
        client = redis.Redis.from_url(handle.url)
        client.xadd(STREAM, {"e": "after"})
        pipe = client.pipeline(transaction=True)  # a later MULTI … EXEC in the file
        pipe.xadd(STREAM, {"e": "in a transaction"})
        pipe.execute()
        client.close()
    finally:
        handle.stop()
    handle = start_server(tmp_path, appendfsync="always", die_with_parent=True)
    try:
        assert _entries(handle.url) == [b"kept", b"after", b"in a transaction"]
    finally:
        handle.stop()


def test_nothing_is_cut_from_a_file_that_ends_outside_a_transaction(tmp_path: Path) -> None:
    handle = start_server(tmp_path, appendfsync="always", die_with_parent=True)
    try:
        client = redis.Redis.from_url(handle.url)
        pipe = client.pipeline(transaction=True)
        pipe.xadd(STREAM, {"e": "one"})
        pipe.execute()
        client.close()
    finally:
        handle.stop()
    incr = last_incr_file(tmp_path)
    assert incr is not None
    size = incr.stat().st_size
    assert drop_torn_transaction(tmp_path) == 0
    assert incr.stat().st_size == size


commands = st.lists(st.lists(st.binary(max_size=40), min_size=1, max_size=4).filter(
    lambda args: args[0].upper() not in (b"MULTI", b"EXEC", b"DISCARD")).map(
    lambda args: resp(*args)), max_size=6)  # any command but the transaction's own


@settings(max_examples=200, deadline=None)
@given(before=commands, inside=commands, cut=st.integers(min_value=0, max_value=400),
       closed=st.booleans())
def test_the_open_transaction_is_found_whatever_the_values_hold(
        before: list[bytes], inside: list[bytes], cut: int, closed: bool) -> None:
    """Values may contain the bytes of MULTI or EXEC; only real commands count."""
    head = b"".join(before) + resp(b"SET", b"k", MULTI + b"\r\n" + resp(b"EXEC"))
    block = MULTI + b"".join(inside) + (resp(b"EXEC") if closed else b"")
    data = head + block
    torn = data[:len(head) + min(cut, len(block))]
    found = aof_tail.torn_transaction(torn)
    if closed and cut >= len(block):
        assert found is None
    elif len(torn) == len(head) + len(MULTI) or cut >= len(MULTI):
        assert found == len(head)
    else:  # the MULTI itself is torn: nothing after the last complete command
        assert found is None
    assert parse(torn[:found] if found is not None else torn).open_multi is None
    # A start reads only the file's tail: cut anywhere before the block, the same answer.
    cut_at = min(len(head), cut % (len(head) + 1))
    tail = aof_tail.torn_transaction(torn[cut_at:], whole=False)
    assert tail == (None if found is None else found - cut_at)
