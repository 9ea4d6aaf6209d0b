"""The ingestion contract: the five event types as pydantic models, and batch validation."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union

from pydantic import Field, TypeAdapter, ValidationError
from typing_extensions import NotRequired, TypedDict

from services.vocabulary import (ASSET_FORMATS, ASSET_TYPES, BUILD_TYPES, DENSITIES, EVENT_TYPES, FINISH_STATUSES,
                                 PARTNER_ID_PATTERN, PARTNER_STATUSES, STAGE_STATUSES, STAGES, TIERS)

__all__ = [
    "Event", "PartnerUpserted", "BuildStarted", "BuildStage", "BuildFinished", "AssetProcessed",
    "EVENT_TYPES", "FieldError", "validate_batch", "nul_errors", "event_adapter", "parse_ts",
]


Stage = Literal[STAGES]
BuildType = Literal[BUILD_TYPES]
PartnerId = Annotated[str, Field(pattern=PARTNER_ID_PATTERN)]
# Numbers must be JSON numbers ("312.5" as a string is refused: strict), never NaN or infinite.
Duration = Annotated[float, Field(ge=0, le=7 * 86400, allow_inf_nan=False, strict=True)]
ShortText = Annotated[str, Field(min_length=1, max_length=128)]
Label = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


_NO_CROSS_FIELD_RULES = frozenset({"build.started", "build.stage", "partner.upserted"})
_MAX_TS = 32503680000.0  # year 3000: catches milliseconds sent as seconds


def parse_ts(value: Any) -> float:
    """RFC 3339 string or epoch seconds → epoch seconds (UTC). Naive strings are read as UTC."""
    if isinstance(value, bool):
        raise ValueError("must be an RFC 3339 string or epoch seconds")
    if isinstance(value, (int, float)):
        ts = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            ts = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("must be an RFC 3339 timestamp (e.g. 2026-11-28T09:30:00Z) or epoch seconds") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            ts = parsed.timestamp()
    else:
        raise ValueError("must be an RFC 3339 string or epoch seconds")
    if not math.isfinite(ts) or ts < 0 or ts >= _MAX_TS:
        raise ValueError("epoch seconds out of range (milliseconds sent by mistake?)")
    return ts


class _Common(TypedDict):
    id: ShortText
    ts: Any
    partner_id: PartnerId


class PartnerUpserted(_Common):
    type: Literal["partner.upserted"]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    tier: Literal[TIERS]
    monthly_build_quota: Annotated[int, Field(ge=0, le=10**9, strict=True)]
    status: Literal[PARTNER_STATUSES]


class BuildStarted(_Common):
    type: Literal["build.started"]
    build_id: ShortText
    build_type: BuildType
    app_version: Annotated[str, Field(min_length=1, max_length=64)]


class BuildStage(_Common):
    type: Literal["build.stage"]
    build_id: ShortText
    stage: Stage
    status: Literal[STAGE_STATUSES]
    duration_s: Duration


class BuildFinished(_Common):
    type: Literal["build.finished"]
    build_id: ShortText
    build_type: BuildType
    status: Literal[FINISH_STATUSES]
    duration_s: Duration
    failed_stage: NotRequired[Stage | None]
    error_category: NotRequired[Label | None]
    error_message: NotRequired[Annotated[str, Field(max_length=4000)] | None]


class AssetProcessed(_Common):
    type: Literal["asset.processed"]
    asset_type: Literal[ASSET_TYPES]
    format: Literal[ASSET_FORMATS]
    density: Literal[DENSITIES]
    original_bytes: Annotated[int, Field(ge=0, le=10**12, strict=True)]
    output_bytes: Annotated[int, Field(ge=0, le=10**12, strict=True)]
    quality_score: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False, strict=True)]
    duration_s: Duration


Event = Annotated[
    Union[PartnerUpserted, BuildStarted, BuildStage, BuildFinished, AssetProcessed],
    Field(discriminator="type"),
]

event_adapter: TypeAdapter = TypeAdapter(Event)
batch_adapter: TypeAdapter = TypeAdapter(list[Event])


class FieldError(dict):
    """One problem of a batch: {"index", "field", "message"}."""

    def __init__(self, index: int, field: str, message: str):
        super().__init__(index=index, field=field, message=message)


def _error_of(err: dict) -> FieldError:
    loc = err["loc"]
    index = loc[0] if loc and isinstance(loc[0], int) else 0
    rest = [str(p) for p in loc[1:] if not (isinstance(p, str) and p in EVENT_TYPES)]
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return FieldError(index, "type", f"must be one of {', '.join(EVENT_TYPES)}")
    if err["type"] in ("model_type", "dict_type", "model_attributes_type") and not rest:
        return FieldError(index, "event", "must be a JSON object")
    return FieldError(index, ".".join(rest) or "event", err["msg"])


def nul_errors(raw_events: list[Any]) -> list[FieldError]:
    """Every string field holding a NUL character (refused: such text breaks logs, CSV and the
    tools downstream). Only called when the body contains one (the caller checks the bytes)."""
    errors = []
    for index, raw in enumerate(raw_events):
        if isinstance(raw, dict):
            for name, value in raw.items():
                if (isinstance(value, str) and "\x00" in value) or (isinstance(name, str) and "\x00" in name):
                    errors.append(FieldError(index, str(name).replace("\x00", "\\0"), "must not contain a NUL character"))
    return errors


def validate_batch(raw_events: list[Any], *, now: float, oldest_ts: float,
                   future_tolerance_s: float) -> tuple[list[dict], list[FieldError]]:
    """Validate a batch as a whole: the normalised events, or every problem of every bad event."""
    errors: list[FieldError] = []
    try:
        events: list[dict] = batch_adapter.validate_python(raw_events)
    except ValidationError as exc:
        errors = [_error_of(err) for err in exc.errors(include_url=False)]
        events = []
    bad = {e["index"] for e in errors}
    if not errors:
        newest_ts = now + future_tolerance_s
        for index, event in enumerate(events):
            ts, kind = event["ts"], event["type"]
            if type(ts) is float and oldest_ts <= ts <= newest_ts and kind in _NO_CROSS_FIELD_RULES:
                continue  # the common case, without a function call per event
            problem = _semantic_problem(event, now, oldest_ts, future_tolerance_s)
            if problem:
                errors.append(FieldError(index, *problem))
    else:
        # Structural errors first; still report semantic ones of the otherwise valid events.
        for index, raw in enumerate(raw_events):
            if index in bad:
                continue
            try:
                event = event_adapter.validate_python(raw)
            except ValidationError:
                continue
            problem = _semantic_problem(event, now, oldest_ts, future_tolerance_s)
            if problem:
                errors.append(FieldError(index, *problem))
    errors.sort(key=lambda e: e["index"])
    return (events if not errors else []), errors


def _semantic_problem(event: dict, now: float, oldest_ts: float,
                      future_tolerance_s: float) -> tuple[str, str] | None:
    """Rules across fields; normalises `ts` to epoch seconds in place."""
    ts = event["ts"]
    if type(ts) is not float or not 0 <= ts < _MAX_TS:  # the common case skips parse_ts
        try:
            ts = event["ts"] = parse_ts(ts)
        except ValueError as exc:
            return "ts", str(exc)
    if ts > now + future_tolerance_s:
        return "ts", f"is {ts - now:.0f} s in the future (more than {future_tolerance_s:.0f} s of clock skew)"
    if ts < oldest_ts:
        return "ts", "is older than the retention window"
    kind = event["type"]
    if kind == "asset.processed" and event["output_bytes"] > event["original_bytes"]:
        return "output_bytes", "must not exceed original_bytes"
    if kind == "build.finished":
        if event.get("error_category"):
            event["error_category"] = event["error_category"].lower()
        if event.get("failed_stage") and event["status"] != "failed":
            return "failed_stage", "is only allowed when status is failed"
    return None
