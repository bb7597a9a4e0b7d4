"""The conformance vectors (tests/protocol/vectors/*.json) hold for Herald's own code:
the files are what the code builds, the producer writes the entry bytes and routes to
the partitions they name, the append script answers as they say, and every consumer
rejects the rejection cases with the reason they name."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest

from herald.consumers.group.handler import entries_of
from herald.streams import codec
from herald.streams.entries import EntryReader
from herald.streams.errors import EntryRejectedError
from herald.streams.ids import compose, partition_of, time_of
from herald.streams.keys import Keys
from herald.streams.partitions import partition_for
from herald.streams.producer import Producer, _Group
from herald.streams.scripts import lua_path, script_source
from herald.streams.settings import Settings
from tests.protocol import vectors

FILES = {name: json.loads((vectors.FOLDER / f"{name}.json").read_text(encoding="utf-8"))
         for name in vectors.BUILDERS}


@pytest.mark.parametrize("name", sorted(vectors.BUILDERS))
def test_the_files_are_what_the_code_builds(name: str) -> None:
    # A difference means the wire format changed: regenerate with
    # `python -m tests.protocol.vectors`, and say so in PROTOCOL.md's version.
    assert FILES[name] == json.loads(vectors.render(vectors.BUILDERS[name]()))


@pytest.mark.parametrize("case", FILES["entries"]["cases"], ids=lambda c: c["name"])
def test_the_producer_writes_the_entry_bytes(case: dict[str, Any]) -> None:
    env = vectors.envelope_of(case["event"])
    raw = codec.encode(env)
    assert raw.hex() == case["entry_hex"]
    assert codec.decode(bytes.fromhex(case["entry_hex"])) == env
    assert partition_for(env.user, FILES["entries"]["partitions"]) == case["partition"]
    assert partition_of(env.id) == case["partition"]
    assert Keys(FILES["entries"]["prefix"]).stream(case["partition"]) == case["stream"]


def test_every_event_type_and_version_has_a_vector() -> None:
    from herald.streams.events import REGISTRY

    covered = {(c["event"]["t"], c["event"]["v"]) for c in FILES["entries"]["cases"]}
    assert covered == set(REGISTRY)


@pytest.mark.parametrize("case", FILES["partitions"]["cases"],
                         ids=lambda c: f"{c['user'][:12]}/{c['partitions']}")
def test_partitions(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["utf8_hex"])
    assert data == case["user"].encode("utf-8")
    digest = hashlib.blake2b(data, digest_size=8).digest()
    assert digest.hex() == case["blake2b_64_hex"]
    assert int.from_bytes(digest, "big") % case["partitions"] == case["partition"]
    assert partition_for(case["user"], case["partitions"]) == case["partition"]
    assert Keys("herald").tag(case["partition"]) == case["tag"]


@pytest.mark.parametrize("case", FILES["ids"]["cases"], ids=lambda c: c["id"])
def test_ids(case: dict[str, Any]) -> None:
    assert compose(case["ms"], int(case["random_hex"], 16), case["partition"]) == case["id"]
    assert partition_of(case["id"]) == case["partition"]
    assert time_of(case["id"]) == case["ms"]


def test_the_script_text_and_the_producers_call(settings: Settings) -> None:
    doc = FILES["script"]
    source = script_source(lua_path(vectors.STREAMS, doc["name"]))
    assert source == doc["source"]
    assert hashlib.sha1(source.encode()).hexdigest() == doc["sha1"]
    call = doc["call"]
    # The producer's own call for these events, in the vector's prefix and window.
    producer = Producer(None, settings.replace(prefix=call["prefix"], partitions=call[
        "partitions"], dedupe_window_s=call["span_ms"] / 1000))
    events = call["events"]
    partition = partition_of(events[0]["id"])
    group = _Group(partition, [0, 1], [e["id"] for e in events], Keys(call["prefix"]).stream(
        partition), [x for e in events for x in (bytes.fromhex(e["entry_hex"]), e["id"],
                                                   e["key"])],
                   bucket=call["now_ms"] // call["span_ms"])
    keys, argv = producer._command(group)
    assert keys == call["keys"]
    assert [str(a) for a in argv[:2]] == call["argv"]
    assert argv[2].hex() == call["argv3_hex"]


async def test_the_script_replies_as_the_vector_says(redis: Any, settings: Settings) -> None:
    """The vector's call against a real server: positions, then [first id, first position]
    for the keyed event; the vector's own bucket (a year ago) is refused with BUCKET."""
    doc = FILES["script"]
    call = doc["call"]
    prefix = settings.prefix
    keys = [k.replace(call["prefix"] + ":", prefix + ":", 1) for k in call["keys"]]
    sha = await redis.script_load(doc["source"])
    assert sha == doc["sha1"]
    argv3 = bytes.fromhex(call["argv3_hex"])
    with pytest.raises(Exception, match=r"^BUCKET \d+") as refused:
        await redis.evalsha(sha, 5, *keys, *call["argv"], argv3)
    assert await redis.xlen(keys[0]) == 0  # nothing written
    server = int(str(refused.value).split()[1])
    span = int(call["argv"][0])
    stream = keys[0]
    buckets = [f"{keys[1].rsplit(':', 1)[0]}:{server + d}" for d in (-2, -1, 0, 1)]
    first = await redis.evalsha(sha, 5, stream, *buckets, span, server, argv3)
    assert [type(r) for r in first] == [bytes, bytes]
    assert all(re.fullmatch(rb"\d+-\d+", r) for r in first)
    again = await redis.evalsha(sha, 5, stream, *buckets, span, server, argv3)
    events = call["events"]
    assert again[0] == [events[0]["id"].encode(), first[0]]  # the keyed event: a duplicate
    assert re.fullmatch(rb"\d+-\d+", again[1]) and again[1] != first[1]  # no key: appended
    assert await redis.xlen(stream) == 3
    rows = await redis.xrange(stream)
    assert rows[0][1] == {b"e": bytes.fromhex(events[0]["entry_hex"])}


@pytest.mark.parametrize("case", FILES["rejections"]["cases"], ids=lambda c: c["name"])
def test_every_consumer_rejects_the_rejection_cases(settings: Settings,
                                                    case: dict[str, Any]) -> None:
    doc = FILES["rejections"]
    reader = EntryReader(settings.replace(partitions=doc["partitions"],
                                          max_event_bytes=doc["max_event_bytes"]))
    if "fields" in case:
        flat = [x for k, v in case["fields"].items() for x in (k.encode(), bytes.fromhex(v))]
        [entry] = entries_of([(b"1-1", flat)])
        assert entry.raw is None and entry.problem is not None
        reason = entry.problem
    else:
        with pytest.raises(EntryRejectedError) as rejected:
            reader.read(bytes.fromhex(case["entry_hex"]), doc["partition"])
        reason = str(rejected.value)
        assert rejected.value.reason == case["reason"]
    assert reason.startswith(case["reason"] + ": ")
    assert case["detail"] in reason
