"""Every validation rule of the ingestion contract names the index and the field at fault."""
import pytest

from services.ingest.events import parse_ts, validate_batch

NOW = 1_795_824_000.0
OLDEST = NOW - 90 * 86400


def finished(**over):
    event = {"id": "e1", "type": "build.finished", "ts": NOW - 60, "partner_id": "acme-bank",
             "build_id": "b1", "build_type": "release", "status": "success", "duration_s": 321.5}
    event.update(over)
    return event


def check(events):
    return validate_batch(events, now=NOW, oldest_ts=OLDEST, future_tolerance_s=300)


def fields_of(errors):
    return {(e["index"], e["field"]) for e in errors}


def test_valid_event_is_normalised():
    events, errors = check([finished(ts="2026-11-28T00:00:00Z", error_category=None)])
    assert errors == []
    assert events[0]["ts"] == NOW


@pytest.mark.parametrize("field, value", [
    ("id", ""), ("id", "x" * 129), ("partner_id", "Acme"), ("partner_id", "-acme"), ("partner_id", "a" * 65),
    ("build_type", "nightly"), ("status", "ok"), ("duration_s", -1), ("duration_s", "fast"),
    ("ts", "yesterday"), ("ts", True), ("ts", 1_795_824_000_000), ("ts", NOW + 3600), ("ts", OLDEST - 1),
    ("failed_stage", "linking"), ("error_category", "bad category!"),
])
def test_bad_field_is_reported_by_name(field, value):
    _, errors = check([finished(**{field: value})])
    assert (0, field) in fields_of(errors)


@pytest.mark.parametrize("missing", ["id", "ts", "partner_id", "build_id", "build_type", "status", "duration_s"])
def test_missing_field_is_reported(missing):
    event = finished()
    del event[missing]
    _, errors = check([event])
    assert (0, missing) in fields_of(errors)


def test_unknown_type_and_non_object():
    _, errors = check([finished(type="build.exploded"), 42])
    assert fields_of(errors) == {(0, "type"), (1, "event")}


def test_every_bad_event_is_listed_and_nothing_returned():
    events, errors = check([finished(), finished(id=""), finished(), finished(status="meh"), finished(ts=NOW + 9999)])
    assert events == []
    assert {e["index"] for e in errors} == {1, 3, 4}


def test_asset_output_larger_than_original_is_rejected():
    asset = {"id": "a", "type": "asset.processed", "ts": NOW, "partner_id": "p", "asset_type": "icon",
             "format": "png", "density": "xhdpi", "original_bytes": 100, "output_bytes": 200,
             "quality_score": 90, "duration_s": 0.1}
    assert fields_of(check([asset])[1]) == {(0, "output_bytes")}
    assert fields_of(check([dict(asset, quality_score=101)])[1]) == {(0, "quality_score")}
    assert fields_of(check([dict(asset, original_bytes=1.5)])[1]) == {(0, "original_bytes")}


def test_failed_stage_only_on_failed_builds():
    assert fields_of(check([finished(failed_stage="signing")])[1]) == {(0, "failed_stage")}
    assert check([finished(status="failed", failed_stage="signing", error_category="Signing")])[1] == []


def test_partner_rules():
    partner = {"id": "p1", "type": "partner.upserted", "ts": NOW, "partner_id": "acme", "name": "Acme",
               "tier": "pro", "monthly_build_quota": 5000, "status": "active"}
    assert check([partner])[1] == []
    assert fields_of(check([dict(partner, tier="gold")])[1]) == {(0, "tier")}
    assert fields_of(check([dict(partner, monthly_build_quota=-1)])[1]) == {(0, "monthly_build_quota")}
    assert fields_of(check([dict(partner, status="gone")])[1]) == {(0, "status")}


def test_extra_fields_are_ignored():
    events, errors = check([finished(colour="blue")])
    assert errors == [] and "colour" not in events[0]


@pytest.mark.parametrize("text, expected", [
    ("2026-11-28T00:00:00Z", NOW), ("2026-11-28T01:00:00+01:00", NOW), ("2026-11-28T00:00:00", NOW),
    ("1795824000", NOW), (1795824000, NOW), (1795824000.25, NOW + 0.25),
])
def test_timestamps(text, expected):
    assert parse_ts(text) == expected
