"""The filter bar's URL state (parse_filters / filters_query) and its resolution to a time range
(resolve_range); the partner rule is tests/unit/test_scope.py."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, strategies as st

from callbacks.filters import resolve_range
from layouts.shell import DEFAULT_FILTERS, REFRESH_CHOICES, filters_query, parse_filters
from services.timerange import RANGES

NOW = 1_795_824_000 + 5 * 3600 + 1234  # 2026-11-28 05:20:34 UTC
PRESETS = [name for name, span in RANGES.items() if span]


def day(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


# --- parse_filters ----------------------------------------------------------------------------

@pytest.mark.parametrize("search", [None, "", "?"])
def test_parse_empty_gives_defaults(search):
    assert parse_filters(search) == DEFAULT_FILTERS


def test_parse_does_not_share_default_partner_list():
    parsed = parse_filters("")
    parsed["partners"].append("acme")
    assert DEFAULT_FILTERS["partners"] == []


def test_parse_all_fields():
    assert parse_filters("?range=7d&partner=beta,acme&refresh=off") == {
        "range": "7d", "from": None, "to": None, "partners": ["acme", "beta"], "refresh": "off"}


def test_parse_without_question_mark():
    assert parse_filters("range=1h")["range"] == "1h"


@pytest.mark.parametrize("search", ["?range=2d", "?range=", "?range=24H", "?refresh=10s", "?refresh=",
                                    "?range=1y&refresh=never", "?bogus=1"])
def test_parse_bad_values_fall_back(search):
    assert parse_filters(search) == DEFAULT_FILTERS


def test_parse_bad_range_keeps_good_refresh():
    assert parse_filters("?range=nope&refresh=5s") == {**DEFAULT_FILTERS, "refresh": "5s"}


@pytest.mark.parametrize("search", ["?range=custom", "?range=custom&from=2026-11-01",
                                    "?range=custom&to=2026-11-03", "?range=custom&from=&to=2026-11-03"])
def test_custom_without_dates_falls_back_to_24h(search):
    parsed = parse_filters(search)
    assert (parsed["range"], parsed["from"], parsed["to"]) == ("24h", None, None)


def test_custom_with_dates():
    parsed = parse_filters("?range=custom&from=2026-11-01&to=2026-11-03")
    assert (parsed["range"], parsed["from"], parsed["to"]) == ("custom", "2026-11-01", "2026-11-03")


def test_dates_ignored_for_presets():
    parsed = parse_filters("?range=7d&from=2026-11-01&to=2026-11-03")
    assert (parsed["range"], parsed["from"], parsed["to"]) == ("7d", None, None)


def test_partners_deduplicated_and_sorted():
    assert parse_filters("?partner=zeta,acme,&partner=acme&partner=beta,zeta")["partners"] == ["acme", "beta", "zeta"]


def test_bad_custom_dates_fall_back():
    parsed = parse_filters("?range=custom&from=yesterday&to=2026-11-03")
    start, end = resolve_range(parsed, NOW)  # raises ValueError today
    assert parsed["range"] == "24h"
    assert (start, end) == (NOW - 86400, NOW)


# --- filters_query ----------------------------------------------------------------------------

def test_defaults_give_empty_query():
    assert filters_query(DEFAULT_FILTERS) == ""


def test_query_omits_default_fields():
    assert filters_query({**DEFAULT_FILTERS, "range": "7d"}) == "?range=7d"
    assert filters_query({**DEFAULT_FILTERS, "refresh": "off"}) == "?refresh=off"


def test_query_partners_comma_joined_sorted():
    query = filters_query({**DEFAULT_FILTERS, "partners": ["zeta", "acme", "beta"]})
    assert query == "?partner=acme,beta,zeta"


def test_query_partners_duplicates_collapse_on_parse():
    query = filters_query({**DEFAULT_FILTERS, "partners": ["beta", "acme", "beta"]})
    assert parse_filters(query)["partners"] == ["acme", "beta"]


def test_query_custom_range_has_dates():
    query = filters_query({**DEFAULT_FILTERS, "range": "custom", "from": "2026-11-01", "to": "2026-11-03"})
    assert query == "?range=custom&from=2026-11-01&to=2026-11-03"


def test_query_field_order():
    query = filters_query({"range": "1h", "from": None, "to": None, "partners": ["acme"], "refresh": "5s"})
    assert query == "?range=1h&partner=acme&refresh=5s"


PARTNER_IDS = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)
DATES = st.dates(min_value=datetime(2020, 1, 1).date(), max_value=datetime(2030, 12, 31).date()).map(str)


@st.composite
def filter_sets(draw):
    rng = draw(st.sampled_from(list(RANGES)))
    custom = rng == "custom"
    return {"range": rng,
            "from": draw(DATES) if custom else None,
            "to": draw(DATES) if custom else None,
            "partners": sorted(draw(st.sets(PARTNER_IDS, max_size=6))),
            "refresh": draw(st.sampled_from(list(REFRESH_CHOICES)))}


@given(filter_sets())
def test_query_round_trip(filters):
    query = filters_query(filters)
    assert parse_filters(query) == filters
    assert filters_query(parse_filters(query)) == query


# --- resolve_range ----------------------------------------------------------------------------

@pytest.mark.parametrize("preset", PRESETS)
def test_preset_ends_now(preset):
    start, end = resolve_range({**DEFAULT_FILTERS, "range": preset}, NOW)
    assert end == NOW
    assert end - start == RANGES[preset]


def test_missing_range_is_24h():
    assert resolve_range({}, NOW) == (NOW - 86400, NOW)
    assert resolve_range({"range": None}, NOW) == (NOW - 86400, NOW)


def test_custom_dates_are_whole_utc_days():
    filters = {**DEFAULT_FILTERS, "range": "custom", "from": "2026-11-01", "to": "2026-11-03"}
    start, end = resolve_range(filters, NOW)
    assert start == day("2026-11-01T00:00:00") == 1_793_491_200
    assert end == day("2026-11-04T00:00:00") == 1_793_750_400


def test_custom_single_day():
    filters = {**DEFAULT_FILTERS, "range": "custom", "from": "2026-11-02", "to": "2026-11-02"}
    assert resolve_range(filters, NOW) == (day("2026-11-02T00:00:00"), day("2026-11-03T00:00:00"))


def test_custom_datetime_strings_use_the_date():
    filters = {**DEFAULT_FILTERS, "range": "custom", "from": "2026-11-01T13:45:00", "to": "2026-11-03T08:00:00"}
    assert resolve_range(filters, NOW) == (day("2026-11-01T00:00:00"), day("2026-11-04T00:00:00"))


def test_custom_reversed_dates_non_empty():
    filters = {**DEFAULT_FILTERS, "range": "custom", "from": "2026-11-03", "to": "2026-11-01"}
    start, end = resolve_range(filters, NOW)
    assert end > start
    assert start % 86400 == 0 and end % 86400 == 0
    assert start <= day("2026-11-01T00:00:00")
    assert end >= day("2026-11-02T00:00:00")


@given(DATES, DATES)
def test_custom_range_always_whole_days(a, b):
    start, end = resolve_range({**DEFAULT_FILTERS, "range": "custom", "from": a, "to": b}, NOW)
    assert end - start >= 86400
    assert start % 86400 == 0 and end % 86400 == 0


def test_auto_refresh_stops_for_settled_custom_ranges():
    from callbacks.shell import range_is_settled

    now = datetime(2026, 11, 28, 12, tzinfo=timezone.utc).timestamp()
    assert range_is_settled({"range": "custom", "from": "2026-11-01", "to": "2026-11-20"}, now)
    assert not range_is_settled({"range": "custom", "from": "2026-11-01", "to": "2026-11-27"}, now)  # yesterday
    assert not range_is_settled({"range": "custom", "from": "2026-11-28", "to": "2026-11-28"}, now)
    assert not range_is_settled({"range": "7d", "from": None, "to": None}, now)
