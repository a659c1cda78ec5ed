"""How the log keeps its JSON: as text, and a request's records as an array per field.

A 100-record request of breast_cancer's 30 fields is 76 KB of text as an object per record and
22 KB as an array per field. PostgreSQL stored the arrays in 0.6 ms of its CPU instead of 1.1-1.3,
and the writer sent them in 0.35 ms instead of 0.5 (in-process, binary COPY, measured); the
service spends about 0.1 ms more to build them. Records that do not all have the same fields (a
gap sent as an absent field, say) keep the object-per-record form, which ``decode_records``
reads too, as it reads a log written before.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import sqlalchemy as sa

from serving.store.engine import dumps, loads


def encode_records(records: list[Any]) -> str:
    """``records`` as the log's text: an array per field when they share their fields.

    Transposed by C-level calls (``itemgetter``, ``zip``): a comprehension over each field of
    each record cost the service 0.6 ms per 100 records under load, where it shares the GIL with
    the threads that predict (py-spy), and 0.1 ms alone.
    """
    first = records[0] if records else None
    width = len(first) if type(first) is dict else 0
    if width and all(type(r) is dict and len(r) == width for r in records):
        get = itemgetter(*first)
        try:
            values = list(map(get, records)) if width > 1 else [(get(r),) for r in records]
        except KeyError:  # as many fields, not the same ones
            return dumps(records)
        return dumps(dict(zip(first, zip(*values, strict=True), strict=True)))
    return dumps(records)


def decode_records(value: Any) -> list[Any]:
    """The records back from the log's parsed text, one object per record, as they were sent."""
    if isinstance(value, dict):
        return [dict(zip(value, row, strict=True)) for row in zip(*value.values(), strict=True)]
    return value


class JSONText(sa.TypeDecorator):
    """JSON kept as text: what the log writer sends, stored as it is, parsed when read.

    PostgreSQL's ``json`` type parses every value it takes to check it: a third of the server's
    CPU for a 100-record batch (2.05-2.5 against 1.45-1.77 ms, measured), for text orjson made.
    """

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        """A value as the column's text."""
        return None if value is None else dumps(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        """The column's text as its value."""
        return None if value is None else loads(value)


class RecordsText(JSONText):
    """A request's records, kept as an array per field (``encode_records``)."""

    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        """Records as the column's text."""
        return None if value is None else encode_records(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        """The column's text as one object per record."""
        return None if value is None else decode_records(loads(value))
