"""Streaming CSV / JSON / NDJSON writers for data exports: generators of ~64 KiB `bytes` chunks that
pull row tuples (in column order) lazily, so a million-row export stays in flat memory.

Decisions: timestamps (epoch seconds, in `time_columns`) become ISO-8601 UTC in whole seconds,
floored (`2026-12-01T09:30:00Z`; 09:30:00.999 is still 09:30:00). Numbers use the shortest
round-trip form in every format (orjson's: the digits of `repr`, `0.1`, `1e-7`, `1e+16`); NaN and
±inf become an empty CSV cell / JSON null, bools `true` / `false`. CSV is RFC 4180 (header first,
CRLF, quotes only where needed); text cells that a spreadsheet would run as a formula (leading
`=`, `+`, `-`, `@`, tab, CR) get a leading `'`; numbers never do (-3.5 stays -3.5, the *string*
"-5" becomes '-5). Rows are converted a batch at a time, column by column, choosing each column's
path from the set of types it holds in the batch, so the common cases run in C.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from itertools import islice, repeat
from numbers import Integral, Real

import numpy as np
import orjson

__all__ = ["CHUNK_BYTES", "FORMATS", "MEDIA_TYPES", "content_disposition", "dict_rows", "iso_utc",
           "stream", "write_csv", "write_json", "write_ndjson"]

MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json", "ndjson": "application/x-ndjson"}
FORMATS = tuple(MEDIA_TYPES)
CHUNK_BYTES = 64 * 1024
_BATCH_ROWS = 4096  # at most this many rows are converted together: as many as make ~CHUNK_BYTES

_NONE = type(None)
_STR_NONE, _SCALARS = frozenset({str, _NONE}), frozenset({int, float, bool, _NONE})
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAYS: dict[int, str] = {}  # day number → "YYYY-MM-DD"
_HHMM = [f"T{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
_SS = [f"{s:02d}Z" for s in range(60)]
_DATASET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def iso_utc(epoch_s: float | None) -> str | None:
    """Epoch seconds → `2026-12-01T09:30:00Z` (UTC, floored to the second); None, NaN, ±inf → None."""
    if epoch_s is None:
        return None
    try:
        day, second = divmod(math.floor(epoch_s), 86400)
    except (ValueError, OverflowError):  # NaN, ±inf
        return None
    prefix = _DAYS.get(day)
    if prefix is None:
        if len(_DAYS) >= 65536:
            _DAYS.clear()
        prefix = _DAYS[day] = date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
    minute, second = divmod(second, 60)
    return prefix + _HHMM[minute] + _SS[second]


def dict_rows(columns: Sequence[str], rows: Iterable[Mapping]) -> Iterator[tuple]:
    """Dicts → tuples in column order, lazily (a missing key is None)."""
    columns = tuple(columns)
    return (tuple(map(row.get, columns)) for row in rows)


def content_disposition(dataset: str, fmt: str, start: float, end: float) -> str:
    """`attachment; filename="lulupay-<dataset>-<UTC date of start>-<UTC date of end>.<fmt>"`."""
    if fmt not in MEDIA_TYPES or not _DATASET.fullmatch(dataset) or not start <= end:
        raise ValueError(f"bad export name: dataset={dataset!r} fmt={fmt!r} start={start!r} end={end!r}")
    day = [datetime.fromtimestamp(math.floor(t), timezone.utc).strftime("%Y%m%d") for t in (start, end)]
    return f'attachment; filename="lulupay-{dataset}-{day[0]}-{day[1]}.{fmt}"'


def _text_cell(text: str) -> str:
    if text.startswith(_FORMULA):
        text = "'" + text
    if '"' in text:
        return '"' + text.replace('"', '""') + '"'
    return '"' + text + '"' if "," in text or "\n" in text or "\r" in text else text


def _csv_cell(value) -> str:  # any one value: the slow path
    if value is None:
        return ""
    if isinstance(value, str):
        return _text_cell(str(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, (Real, Decimal)):
        text = orjson.dumps(float(value)).decode()
        return "" if text == "null" else text
    return _text_cell(str(value))


def _csv_column(values: Sequence) -> Sequence[str]:
    """One batch's cells of one column, as CSV fields."""
    types = set(map(type, values))
    if types <= _STR_NONE:
        if _NONE in types:
            values = ["" if v is None else v for v in values]
        joined = "\0" + "\0".join(values)  # one C scan per special character for the whole batch
        if ('"' in joined or "," in joined or "\n" in joined or "\r" in joined or "\0=" in joined
                or "\0+" in joined or "\0-" in joined or "\0@" in joined or "\0\t" in joined):
            distinct = set(values)  # labels (status, branch…) repeat: convert each once
            if len(distinct) * 4 > len(values):
                return list(map(_text_cell, values))
            return list(map({v: _text_cell(v) for v in distinct}.__getitem__, values))
        return values
    if types <= _SCALARS:
        try:
            raw = orjson.dumps(values)  # [1,2.5,null,true]: shortest floats, NaN → null, in C
        except orjson.JSONEncodeError:  # an int beyond 64 bits
            return list(map(_csv_cell, values))
        cells = raw[1:-1].decode().split(",")
        return ["" if c == "null" else c for c in cells] if b"null" in raw else cells
    return list(map(_csv_cell, values))


_TIME_MAX = 253402300800.0  # 10000-01-01: numpy and `iso_utc` write the same four-digit years below it


def _iso_cells(values: Sequence) -> list[str | None]:
    """`iso_utc` of every value of a batch, formatted by numpy in C where the values allow it
    (epoch seconds from 1970 to 9999; a third of a CSV export's time was `iso_utc` called per cell)."""
    try:
        seconds = np.array(values, dtype=float)  # None → NaN
    except (TypeError, ValueError, OverflowError):
        return list(map(iso_utc, values))
    plain = (seconds >= 0) & (seconds < _TIME_MAX)  # NaN compares False
    whole = np.floor(np.where(plain, seconds, 0.0)).astype(np.int64).astype("datetime64[s]")
    cells = np.datetime_as_string(whole, unit="s", timezone="UTC").tolist()
    if plain.all():
        return cells
    return [cell if ok else iso_utc(v) for cell, ok, v in zip(cells, plain.tolist(), values)]


def _time_column(values: Sequence) -> list[str]:
    cells = _iso_cells(values)
    return ["" if c is None else c for c in cells] if None in cells else cells


def _json_default(value):
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, (Decimal, Real)):
        return float(value) if math.isfinite(value) else None
    raise TypeError(f"cannot export {type(value).__name__} as JSON")


def _setup(columns: Sequence[str], time_columns: Collection[str]) -> tuple[tuple[str, ...], list[int]]:
    columns = tuple(columns)
    if not columns or len(set(columns)) != len(columns):
        raise ValueError(f"columns must be non-empty and distinct: {columns!r}")
    unknown = set(time_columns) - set(columns)
    if unknown:
        raise ValueError(f"time columns not in columns: {sorted(unknown)}")
    return columns, [i for i, name in enumerate(columns) if name in time_columns]


def _pump(rows: Iterable[tuple], width: int, encode: Callable[[list], bytes],
          head: bytes, sep: bytes, tail: bytes) -> Iterator[bytes]:
    """`head`, the encoded batches of `rows` joined by `sep`, `tail`: pulled lazily, yielded in ~64 KiB chunks."""
    rows, size, chunk, buffered, lead = iter(rows), 128, [head], len(head), b""
    while batch := list(islice(rows, size)):
        if isinstance(batch[0], Mapping):
            raise TypeError("rows are tuples in column order: wrap dicts in dict_rows(columns, rows)")
        if set(map(len, batch)) != {width}:
            raise ValueError(f"every row needs {width} values, got lengths {sorted(set(map(len, batch)))}")
        piece = encode(batch)
        chunk += (lead, piece)
        buffered, lead = buffered + len(lead) + len(piece), sep
        if buffered >= CHUNK_BYTES:
            yield b"".join(chunk)
            chunk, buffered = [], 0
        size = max(1, min(_BATCH_ROWS, CHUNK_BYTES * 9 // 8 * len(batch) // max(len(piece), 1)))
    chunk.append(tail)
    if out := b"".join(chunk):
        yield out


def write_csv(columns: Sequence[str], rows: Iterable[tuple], *,
              time_columns: Collection[str] = ()) -> Iterator[bytes]:
    """RFC 4180 CSV (UTF-8, CRLF, header row first, formula-safe text) as a stream of chunks."""
    columns, times = _setup(columns, time_columns)
    lone = len(columns) == 1  # a one-column row with an empty cell would be a blank line: write ""

    def encode(batch: list) -> bytes:
        cells = [_time_column(c) if i in times else _csv_column(c) for i, c in enumerate(zip(*batch))]
        if lone:
            cells = [['""' if c == "" else c for c in cells[0]]]
        return ("\r\n".join(map(",".join, zip(*cells))) + "\r\n").encode("utf-8", "replace")

    header = (",".join(map(_text_cell, columns)) + "\r\n").encode("utf-8", "replace")
    return _pump(rows, len(columns), encode, header, b"", b"")


def _json_stream(columns: Sequence[str], rows: Iterable[tuple], time_columns: Collection[str], option: int,
                 sep: bytes, head: bytes, tail: bytes) -> Iterator[bytes]:
    columns, times = _setup(columns, time_columns)
    default, option = repeat(_json_default), repeat(option | orjson.OPT_SERIALIZE_NUMPY)

    def encode(batch: list) -> bytes:
        if times:
            values = list(zip(*batch))
            for i in times:
                values[i] = _iso_cells(values[i])
            batch = zip(*values)
        return sep.join(map(orjson.dumps, map(dict, map(zip, repeat(columns), batch)), default, option))
    return _pump(rows, len(columns), encode, head, sep, tail)


def write_json(columns: Sequence[str], rows: Iterable[tuple], *,
               time_columns: Collection[str] = ()) -> Iterator[bytes]:
    """One JSON array of objects: `[`, the rows joined by `,\\n`, `]` (empty: `[]`), as a stream of chunks."""
    return _json_stream(columns, rows, time_columns, 0, b",\n", b"[", b"]")


def write_ndjson(columns: Sequence[str], rows: Iterable[tuple], *,
                 time_columns: Collection[str] = ()) -> Iterator[bytes]:
    """One JSON object per line, each ending in `\\n` (empty: an empty body), as a stream of chunks."""
    return _json_stream(columns, rows, time_columns, orjson.OPT_APPEND_NEWLINE, b"", b"", b"")


_WRITERS = {"csv": write_csv, "json": write_json, "ndjson": write_ndjson}


def stream(fmt: str, columns: Sequence[str], rows: Iterable[tuple], *,
           time_columns: Collection[str] = ()) -> Iterator[bytes]:
    """The `fmt` ("csv", "json", "ndjson") writer's chunks for `rows`; an unknown format → ValueError."""
    if fmt not in _WRITERS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {FORMATS}")
    return _WRITERS[fmt](columns, rows, time_columns=time_columns)
