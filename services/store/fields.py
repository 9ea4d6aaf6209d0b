"""The only place that builds and parses rollup *field* names (the twin of `keys.py`, which owns
the key names). A rollup bucket of one kind holds {field: number}; the fields of each kind:

* `b` (finished builds) — `n:<status>:<build type>` count, `ds:<status>:<build type>` duration
  sum (completed builds only), `st:<build type>` builds started, `fs:<stage>` failures by failed
  stage, `ec:<category>` failures by error category, and in the all-partner scope only
  `pc:<partner>:<status>` finished builds per partner.
* `bh` (build duration histogram) — `<bucket index>` (services/sketch) count.
* `s` (stages) — `n:<stage>:<status>` count, `ds:<stage>` duration sum (skipped stages excluded).
* `sh` (stage duration histograms) — `<stage>:<bucket index>` count.
* `a` (assets) — `n:`, `ob:` (original bytes), `wb:` (written bytes), `q:` (quality sum), `ds:`
  (duration sum), each followed by `<asset type>:<format>:<density>`.
* `th` (build duration histograms per build type) — `<build type>:<bucket index>` count.
* `ah` (asset processing-time histograms per asset type) — `<asset type>:<bucket index>` count of
  `asset.processed` events whose `duration_s` falls in that bucket (services/sketch).
* `e` (failure signatures: failed builds carrying an error message) — `n:<signature>` count,
  `s:<signature>:<failed stage>` and `c:<signature>:<category>` counts, and in the all-partner scope
  only `p:<signature>:<partner>` count. A reader of a partner scope adds the `p:` fields itself.
"""
from __future__ import annotations

from functools import lru_cache

__all__ = [
    "finished", "status_of", "finished_seconds", "started", "failed_stage", "error_category", "partner_finished",
    "stage_count", "stage_seconds", "stage_bucket", "asset_dims", "asset", "parse_stage_bucket", "parse_asset",
    "partner_of", "type_bucket", "parse_type_bucket", "asset_bucket", "parse_asset_bucket", "signature_count", "signature_stage", "signature_category",
    "signature_partner", "parse_signature_field", "SIGNATURE_COUNT", "FINISHED", "FINISHED_SECONDS", "STARTED", "PARTNER_FINISHED", "ASSET_MEASURES",
]

# Prefixes a reader sums by (Totals.count): every field of the measure starts with one.
FINISHED = "n:"
FINISHED_SECONDS = "ds:"
STARTED = "st:"
PARTNER_FINISHED = "pc:"
ASSET_MEASURES = ("n", "ob", "wb", "q", "ds")  # count, original bytes, written bytes, quality sum, seconds


def finished(status: str, build_type: str = "") -> str:
    """`b`: finished builds of a status (and build type; without one, the prefix of them all)."""
    return f"n:{status}:{build_type}"


def status_of(field: str) -> str:
    """The status of a `finished` field."""
    return field.split(":")[1]


def finished_seconds(status: str, build_type: str) -> str:
    """`b`: duration sum of completed builds of a status and build type."""
    return f"ds:{status}:{build_type}"


def started(build_type: str) -> str:
    """`b`: builds started of a build type."""
    return f"st:{build_type}"


def failed_stage(stage: str) -> str:
    """`b`: failed builds by the stage that failed ('unknown' when the event names none)."""
    return f"fs:{stage}"


def error_category(category: str) -> str:
    """`b`: failed builds by error category."""
    return f"ec:{category}"


def partner_finished(partner_id: str, status: str = "") -> str:
    """`b`, all-partner scope: finished builds of one partner (and status; without one, the prefix)."""
    return f"pc:{partner_id}:{status}"


def partner_of(field: str) -> str:
    """The partner id of a `partner_finished` field."""
    return field.split(":")[1]


def stage_count(stage: str, status: str = "") -> str:
    """`s`: stage runs of a status (without one, the prefix of every status)."""
    return f"n:{stage}:{status}"


def stage_seconds(stage: str) -> str:
    """`s`: duration sum of a stage's runs that were not skipped."""
    return f"ds:{stage}"


def stage_bucket(stage: str, index: int) -> str:
    """`sh`: runs of a stage in one duration histogram bucket."""
    return f"{stage}:{index}"


@lru_cache(maxsize=1 << 16)  # the same few thousand fields come back in every window read
def parse_stage_bucket(field: str) -> tuple[str, int]:
    """(stage, bucket index) of a `stage_bucket` field."""
    stage, _, index = field.rpartition(":")
    return stage, int(index)


def asset_dims(asset_type: str, fmt: str, density: str) -> str:
    """The dimensions part of an asset field."""
    return f"{asset_type}:{fmt}:{density}"


def asset(measure: str, dims: str) -> str:
    """`a`: one measure (ASSET_MEASURES) of one asset type × format × density."""
    return f"{measure}:{dims}"


@lru_cache(maxsize=1 << 14)
def parse_asset(field: str) -> tuple[str, tuple[str, str, str]]:
    """(measure, (asset type, format, density)) of an `asset` field (a few hundred distinct ones:
    a series of 300 windows parses the same names 300 times)."""
    measure, _, dims = field.partition(":")
    asset_type, fmt, density = dims.split(":")
    return measure, (asset_type, fmt, density)


def type_bucket(build_type: str, index: int) -> str:
    """`th`: completed builds of a build type in one duration histogram bucket."""
    return f"{build_type}:{index}"


@lru_cache(maxsize=1 << 16)
def parse_type_bucket(field: str) -> tuple[str, int]:
    """(build type, bucket index) of a `type_bucket` field."""
    build_type, _, index = field.partition(":")
    return build_type, int(index)


def asset_bucket(asset_type: str, index: int) -> str:
    """`ah`: processed assets of an asset type in one duration histogram bucket."""
    return f"{asset_type}:{index}"


@lru_cache(maxsize=1 << 12)
def parse_asset_bucket(field: str) -> tuple[str, int]:
    """(asset type, bucket index) of an `asset_bucket` field."""
    asset_type, _, index = field.partition(":")
    return asset_type, int(index)


SIGNATURE_COUNT = "n:"


def signature_count(signature: str) -> str:
    """`e`: failed builds of one failure signature."""
    return f"n:{signature}"


def signature_stage(signature: str, stage: str) -> str:
    """`e`: failed builds of a signature by failed stage ('unknown' when the event names none)."""
    return f"s:{signature}:{stage}"


def signature_category(signature: str, category: str) -> str:
    """`e`: failed builds of a signature by error category ('unknown' when the event names none)."""
    return f"c:{signature}:{category}"


def signature_partner(signature: str, partner_id: str) -> str:
    """`e`, all-partner scope: failed builds of a signature of one partner."""
    return f"p:{signature}:{partner_id}"


def parse_signature_field(field: str) -> tuple[str, str, str]:
    """(measure 'n'|'s'|'c'|'p', signature, detail — '' for 'n') of an `e` field."""
    measure, _, rest = field.partition(":")
    signature, _, detail = rest.partition(":")
    return measure, signature, detail
