from __future__ import annotations

import asyncio
import json
import struct

import pytest

from clusterd.protocol import (
    MAX_FRAME, Apply, BadMessage, Diff, Heartbeat, OversizedFrame, Reply, decode, encode, read_frame,
)
from clusterd.protocol import Rollout, as_data


def heartbeat() -> Heartbeat:
    return Heartbeat(id=1, epoch=2, primary=0, uptime=3.5, sees=[0, 1], head="c0ffee", generation=4, digest="ab",
                     state="in sync", inbox="/x")


async def feed(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


def test_a_frame_is_length_and_json_and_reads_back():
    frame = encode(heartbeat())
    assert struct.unpack(">I", frame[:4])[0] == len(frame) - 4

    async def go():
        return await read_frame(await feed(frame))
    assert asyncio.run(go()) == heartbeat()


@pytest.mark.parametrize("body, reason", [
    (b"\xff\xfe", "not a JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"type": "launch"}', "unknown message type"),
    (b'{"type": "heartbeat", "id": 1}', "without"),
    (b'{"type": "fetch", "rid": "7"}', "wrong type"),
    (b'{"type": "fetch", "rid": true}', "wrong type"),
])
def test_bad_messages_are_refused_with_a_reason(body, reason):
    with pytest.raises(BadMessage, match=reason):
        decode(body)


def test_an_oversized_frame_is_refused_by_its_length_alone():
    async def go():
        return await read_frame(await feed(struct.pack(">I", MAX_FRAME + 1)))
    with pytest.raises(OversizedFrame):
        asyncio.run(go())


def test_a_bad_frame_leaves_the_stream_at_the_next_one():
    bad = b'{"type": 1}'
    data = struct.pack(">I", len(bad)) + bad + encode(heartbeat())

    async def go():
        reader = await feed(data)
        with pytest.raises(BadMessage):
            await read_frame(reader)
        return await read_frame(reader)
    assert asyncio.run(go()) == heartbeat()


def test_messages_are_typed_values_and_optional_fields_may_be_left_out():
    apply = Apply(rid=3, epoch=2, generation={"id": "x"}, lineage=[{"id": "x"}], name="generation-x.conf")
    assert decode(encode(apply)[4:]) == apply
    assert decode(b'{"type": "reply", "rid": 7, "ok": true}') == Reply(7, True)
    assert decode(b'{"type": "diff", "peer": null, "future": 1}') == Diff(None), "unknown fields are ignored"
    assert encode({"type": "status"}) == encode(decode(b'{"type": "status"}'))


def test_a_heartbeat_from_a_server_without_updates_reads_with_an_unknown_version():
    older = {k: v for k, v in as_data(heartbeat()).items() if k != "version"}
    assert decode(json.dumps(older).encode()).version == "", "an older server's heartbeat: version unknown"
    rollout = Rollout(rid=1, record={"id": "r"})
    assert decode(encode(rollout)[4:]) == rollout
