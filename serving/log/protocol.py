"""The frames between the service and its log writer process: one protocol, read by both ends.

A frame is a 4-byte big-endian length and a JSON body. The service sends a list of batches and waits
for the answer: ``null`` once committed, or the error text. The writer's first frame, ``null``, says
it is ready. The writer reads blocking file objects; the service reads asyncio streams.
"""

from __future__ import annotations

import asyncio
import struct
from typing import BinaryIO

import orjson

from serving.store.columns import encode_records
from serving.store.tables import LOGGED_COLUMNS, Logged, PredictionBatch

LENGTH = struct.Struct(">I")
_FEATURES = LOGGED_COLUMNS.index("features")
WRITER_URL = "MLSERVE_LOG_WRITER_URL"
"""The environment variable that hands the writer its database URL (never its command line)."""


def frame(body: bytes) -> bytes:
    """A frame: the body's length, then the body."""
    return LENGTH.pack(len(body)) + body


def write_frame(stream: BinaryIO, body: bytes) -> None:
    """Send one frame and flush it."""
    stream.write(frame(body))
    stream.flush()


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame's body, or None at end of stream."""
    header = stream.read(LENGTH.size)
    if len(header) < LENGTH.size:
        return None
    return stream.read(LENGTH.unpack(header)[0])


async def read_answer(stream: asyncio.StreamReader) -> str | None:
    """The writer's next answer: None when committed, else its error text.

    Raises ``asyncio.IncompleteReadError`` when the writer has exited.
    """
    (length,) = LENGTH.unpack(await stream.readexactly(LENGTH.size))
    return orjson.loads(await stream.readexactly(length))


def encode_batches(batches: list[tuple[PredictionBatch, bytes | None]]) -> bytes:
    """One frame body for a group: each batch as the log's columns, its JSON values as text.

    A batch given with its request's body (the JSON orjson parsed its records from) sends that
    body as it came, for the writer to lay its records out: laying them out here was the
    largest part of logging's cost to the service, which predicts on one core (0.26-0.44 ms of
    a 100-record request, for the floats' text), while the writer runs on another.
    """
    return orjson.dumps(
        [
            batch.logged() if body is None else batch.logged(orjson.Fragment(body))
            for batch, body in batches
        ]
    )


def decode_batches(body: bytes) -> list[Logged]:
    """The batches of a frame, ready for ``PredictionStore.insert_logged``.

    A request's body in place of the records' text is laid out here, as the service would have:
    parsed by orjson, as the service parsed it, so the records are the ones it answered.
    """
    batches = orjson.loads(body)
    for batch in batches:
        if type(sent := batch[_FEATURES]) is dict:
            batch[_FEATURES] = encode_records(sent["records"])
    return [tuple(batch) for batch in batches]
