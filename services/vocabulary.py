"""The product's vocabulary, owned here and imported everywhere: stages, tiers, build and asset
enums, statuses, the partner-id pattern. Order matters where it is given (pipeline order of the
stages, tiers from cheapest to dearest)."""
from __future__ import annotations

import re

__all__ = [
    "STAGES", "BUILD_TYPES", "TIERS", "TIER_RANK", "FINISH_STATUSES", "STAGE_STATUSES", "PARTNER_STATUSES",
    "ASSET_TYPES", "ASSET_FORMATS", "DENSITIES", "EVENT_TYPES", "BUILD_EVENT_TYPES", "PARTNER_ID_PATTERN",
    "PARTNER_RE", "is_partner_id", "STREAMS", "ROLES", "ALERT_SEVERITIES", "ALERT_STATES",
]

# Build pipeline, in order.
STAGES = ("asset_processing", "dependency_resolution", "compilation", "packaging", "signing", "upload")
BUILD_TYPES = ("debug", "release", "store")
# Subscription tiers from cheapest to dearest (an upgrade moves right).
TIERS = ("free", "basic", "pro", "enterprise")
TIER_RANK = {tier: rank for rank, tier in enumerate(TIERS)}
FINISH_STATUSES = ("success", "failed", "cancelled")
STAGE_STATUSES = ("success", "failed", "skipped")
PARTNER_STATUSES = ("active", "suspended", "churned")

ASSET_TYPES = ("icon", "splash", "logo", "banner", "screenshot")
ASSET_FORMATS = ("png", "webp", "jpg", "svg")
DENSITIES = ("mdpi", "hdpi", "xhdpi", "xxhdpi", "xxxhdpi", "any")

EVENT_TYPES = ("partner.upserted", "build.started", "build.stage", "build.finished", "asset.processed")
BUILD_EVENT_TYPES = ("build.started", "build.stage", "build.finished")

# A partner id: what ingest accepts, and the only thing any read accepts as a partner ("*", the
# store's all-partner scope, is not one).
PARTNER_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
PARTNER_RE = re.compile(PARTNER_ID_PATTERN)


def is_partner_id(value: object) -> bool:
    """True when `value` is a string shaped like a partner id."""
    return isinstance(value, str) and PARTNER_RE.fullmatch(value) is not None


# Streams of the live channel (/ws).
STREAMS = ("builds", "metrics", "alerts", "partners")

# Who may do what (docs/security.md).
ROLES = ("admin", "staff", "partner_manager")

ALERT_SEVERITIES = ("info", "warning", "critical")
ALERT_STATES = ("pending", "firing", "resolved")
