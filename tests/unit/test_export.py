"""Streaming exports: formula-safe RFC 4180 CSV, JSON array and NDJSON bodies, ISO-8601 UTC
timestamps, lazy ~64 KiB chunking, and the download's file name."""
import csv
import io
import math
from datetime import datetime, timezone
from decimal import Decimal

import numpy as np
import orjson
import pytest
from hypothesis import given, strategies as st

from services import export

NAN, INF = float("nan"), float("inf")
DEC_1_0930 = 1_796_117_400.0  # 2026-12-01T09:30:00Z
NOV_1, DEC_1 = 1_793_491_200.0, 1_796_083_200.0  # 2026-11-01T00:00Z, 2026-12-01T00:00Z
FORMULA_TEXT = ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("http://x","y")']


def body(fmt, columns, rows, **kw):
    return b"".join(export.stream(fmt, columns, iter(rows), **kw))


def csv_records(data: bytes):
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def csv_cells(column_values, **kw):
    """The CSV cells written for a one-column batch (a second column keeps every record non-blank)."""
    records = csv_records(body("csv", ["v", "k"], [(v, 1) for v in column_values], **kw))
    assert records[0] == ["v", "k"]
    return [r[0] for r in records[1:]]


# The same dangerous value alone, among plain text (one batch), with None beside it, among many
# repeats of a few labels, and among all-distinct values: each takes a different conversion path.
LAYOUTS = {
    "alone": lambda v: [v],
    "among_plain": lambda v: ["plain", "text", v, "more"],
    "with_none": lambda v: [None, v, "ok"],
    "low_cardinality": lambda v: ["main", "dev"] * 300 + [v],
    "distinct": lambda v: [f"id-{i}" for i in range(300)] + [v],
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("text", FORMULA_TEXT)
def test_formula_leading_text_gets_an_apostrophe(text, layout):
    values = LAYOUTS[layout](text)
    cells = csv_cells(values)
    assert cells[values.index(text)] == "'" + text
    assert all(c == ("" if v is None else v) for c, v in zip(cells, values) if v != text)


@pytest.mark.parametrize("text", ["a=b", "1-2", "x@y.z", " =spaced", "", "plain"])
def test_formula_characters_elsewhere_are_left_alone(text):
    assert csv_cells([text, "other"])[0] == text


@pytest.mark.parametrize(("value", "cell"), [
    (-3.5, "-3.5"), (-2, "-2"), (0, "0"), (0.1, "0.1"), (2.0, "2.0"), (1e-7, "1e-7"), (-0.0, "-0.0"),
    (2 ** 70, str(2 ** 70)), (True, "true"), (False, "false"), (NAN, ""), (INF, ""), (-INF, ""), (None, ""),
    (Decimal("-1.25"), "-1.25"), (np.float64(-0.5), "-0.5"), (np.float64(NAN), ""), (np.int64(-7), "-7"),
    ("-5", "'-5"),  # a number that arrives as text is text
])
@pytest.mark.parametrize("company", [[], [1, 2.5, None], [Decimal("1"), "text"]])  # the last: no fast path
def test_number_cells_are_never_prefixed(value, cell, company):
    values, position = [*company[:1], value, *company[1:]], min(len(company), 1)
    cells = csv_cells(values)
    assert cells[position] == cell


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=50))
def test_floats_are_shortest_round_trip(values):
    def digits(text):
        return text.split("e")[0].replace("-", "").replace(".", "").strip("0")

    for value, cell in zip(values, csv_cells(values)):
        assert float(cell) == value and digits(cell) == digits(repr(value))


@pytest.mark.parametrize(("text", "raw"), [
    ("plain", b"plain"), ("a,b", b'"a,b"'), ('say "hi"', b'"say ""hi"""'), ("two\nlines", b'"two\nlines"'),
    ("crlf\r\nin", b'"crlf\r\nin"'), (" padded ", b" padded "), ("caf\u00e9 \u2603", "caf\u00e9 \u2603".encode()),
    ("\rx", b"\"'\rx\""),
])
def test_csv_quotes_only_where_needed_and_round_trips(text, raw):
    data = body("csv", ["a", "b"], [(text, 1)])
    assert data == b"a,b\r\n" + raw + b",1\r\n"
    expected = "'" + text if text.startswith(("\r", "=")) else text
    assert csv_records(data) == [["a", "b"], [expected, "1"]]


def test_csv_header_is_escaped_and_a_lone_empty_column_is_not_a_blank_line():
    assert body("csv", ["=x", "a,b"], []) == b"'=x,\"a,b\"\r\n"
    assert csv_records(body("csv", ["only"], [(None,), ("x",), ("",)])) == [["only"], [""], ["x"], [""]]


@pytest.mark.parametrize(("epoch", "iso"), [
    (DEC_1_0930, "2026-12-01T09:30:00Z"), (DEC_1_0930 + 0.999, "2026-12-01T09:30:00Z"),
    (int(DEC_1_0930), "2026-12-01T09:30:00Z"), (1_796_083_199.0, "2026-11-30T23:59:59Z"),
    (951_825_600.0, "2000-02-29T12:00:00Z"), (0, "1970-01-01T00:00:00Z"), (-0.5, "1969-12-31T23:59:59Z"),
    (None, None), (NAN, None), (INF, None),
])
def test_timestamps_are_iso_utc_whole_seconds(epoch, iso):
    assert export.iso_utc(epoch) == iso
    assert csv_cells([epoch], time_columns=["v"]) == [iso or ""]
    assert orjson.loads(body("json", ["t"], [(epoch,)], time_columns=["t"])) == [{"t": iso}]


@given(st.floats(min_value=-2e9, max_value=4e9))
def test_timestamps_agree_with_datetime(epoch):
    expected = datetime.fromtimestamp(math.floor(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert export.iso_utc(epoch) == expected


COLUMNS = ["id", "status", "started_at", "duration_s", "tests", "ok", "note"]
ROWS = [(f"b-{i}", "=passed" if i % 7 == 0 else "failed", DEC_1_0930 + i * 61.5, i / 10 if i % 5 else None,
         i, i % 2 == 0, f"line {i}\nsecond, \"quoted\"" if i % 3 == 0 else None) for i in range(5000)]
DICTS = [{"id": r[0], "status": r[1], "started_at": export.iso_utc(r[2]), "duration_s": r[3], "tests": r[4],
          "ok": r[5], "note": r[6]} for r in ROWS]


def test_json_array_parses_to_the_same_rows_across_chunks():
    data = body("json", COLUMNS, ROWS, time_columns=["started_at"])
    assert orjson.loads(data) == DICTS  # "=passed" unprefixed: only CSV gets the formula guard
    assert data.startswith(b'[{"id":"b-0",') and data.endswith(b"}]") and len(data) > 3 * export.CHUNK_BYTES
    assert data.count(b"},\n{") == len(ROWS) - 1


def test_ndjson_is_one_object_per_line():
    data = body("ndjson", COLUMNS, ROWS, time_columns=["started_at"])
    lines = data.split(b"\n")
    assert lines[-1] == b"" and [orjson.loads(line) for line in lines[:-1]] == DICTS


def test_csv_rows_round_trip_across_chunks():
    records = csv_records(body("csv", COLUMNS, ROWS, time_columns=["started_at"]))
    assert records[0] == COLUMNS and len(records) == len(ROWS) + 1
    for record, row in zip(records[1:], DICTS):
        status = "'" + row["status"] if row["status"].startswith("=") else row["status"]
        assert record == [row["id"], status, row["started_at"], "" if row["duration_s"] is None else repr(row["duration_s"]),
                          str(row["tests"]), "true" if row["ok"] else "false", row["note"] or ""]


def test_json_nan_is_null_and_dict_rows_fill_missing_keys():
    rows = export.dict_rows(["a", "b"], [{"a": NAN, "b": 1}, {"b": 2.5, "extra": 0}])
    assert orjson.loads(body("json", ["a", "b"], rows)) == [{"a": None, "b": 1}, {"a": None, "b": 2.5}]


@pytest.mark.parametrize(("fmt", "empty"), [("json", b"[]"), ("csv", b"a,b\r\n"), ("ndjson", b"")])
def test_empty_exports(fmt, empty):
    assert body(fmt, ["a", "b"], []) == empty


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_rows_are_pulled_lazily_in_bounded_chunks(fmt):
    pulled = 0

    def rows():
        nonlocal pulled
        for i in range(100_000):
            pulled += 1
            yield (f"b-{i}", "passed", DEC_1_0930 + i, i * 0.25, i, None)

    chunks = export.stream(fmt, ["id", "status", "at", "s", "n", "x"], rows(), time_columns=["at"])
    first = next(chunks)
    assert pulled < 5_000  # the first chunk went out long before the last row was made
    sizes = [len(first)] + [len(chunk) for chunk in chunks]
    assert pulled == 100_000 and len(sizes) > 50
    assert all(export.CHUNK_BYTES <= size < 2 * export.CHUNK_BYTES for size in sizes[:-1])


@pytest.mark.parametrize(("dataset", "fmt", "start", "end", "name"), [
    ("builds", "csv", NOV_1, DEC_1, "lulupay-builds-20261101-20261201.csv"),
    ("builds", "ndjson", NOV_1 + 86399, DEC_1 - 1, "lulupay-builds-20261101-20261130.ndjson"),
    ("asset_stages", "json", DEC_1_0930, DEC_1_0930, "lulupay-asset_stages-20261201-20261201.json"),
])
def test_content_disposition_names_the_utc_dates(dataset, fmt, start, end, name):
    assert export.content_disposition(dataset, fmt, start, end) == f'attachment; filename="{name}"'


@pytest.mark.parametrize(("dataset", "fmt", "start", "end"), [
    ("builds", "xlsx", NOV_1, DEC_1), ('a"b', "csv", NOV_1, DEC_1), ("", "csv", NOV_1, DEC_1),
    ("bu ilds", "csv", NOV_1, DEC_1), ("builds", "csv", DEC_1, NOV_1), ("builds", "csv", NAN, DEC_1),
])
def test_content_disposition_rejects_bad_names(dataset, fmt, start, end):
    with pytest.raises(ValueError):
        export.content_disposition(dataset, fmt, start, end)


def test_unknown_format_and_bad_rows_raise():
    assert export.FORMATS == ("csv", "json", "ndjson") and export.MEDIA_TYPES["csv"] == "text/csv; charset=utf-8"
    with pytest.raises(ValueError, match="xml"):
        export.stream("xml", ["a"], iter([]))  # at the call, before any iteration
    with pytest.raises(ValueError, match="time columns"):
        export.stream("csv", ["a"], [], time_columns=["b"])
    with pytest.raises(ValueError, match="2 values"):
        body("csv", ["a", "b"], [(1, 2), (3,)])
    with pytest.raises(TypeError, match="dict_rows"):
        body("ndjson", ["a"], [{"a": 1}])


def test_time_cells_of_a_batch_equal_iso_utc_of_each_value():
    """The vectorised path (numpy) writes exactly what `iso_utc` writes, edges and fallbacks included."""
    import random

    from services.export import _iso_cells, iso_utc

    rng = random.Random(5)
    values = [0, 1.999, 1764581400.5, None, float("nan"), float("inf"), float("-inf"), -1.5, 253402300799.9,
              253402300800.0 - 1e-3, True, 86399, -86400 * 365 * 1900, 2**40 / 8]
    values += [rng.uniform(0, 4e9) for _ in range(20000)] + [rng.randrange(0, 2**33) for _ in range(2000)]
    assert _iso_cells(values) == [iso_utc(v) for v in values]
    assert _iso_cells([None, None]) == [None, None]
    assert _iso_cells([]) == []
