"""Who asks (`Principal`) and what they may read (`Scope`): the one place where access is decided.

Every read of partner data — API, exports, Dash callbacks, the server-drawn first view, `/ws`
subscriptions — takes a `Scope`, and a `Scope` comes only from `scope_for()`, which applies the one
rule: the partners asked for ∩ the partners the principal may see, deny by default. A principal
that sees no partner sees nothing (an empty partner set, never "all"); only admin and staff (and
the deployment's own background jobs, `SYSTEM`) may see every partner.

It is also where the request's inputs are bounded before any work: partner ids by the one
pattern (so "*", the store's all-partner scope, can never be asked for), at most
`MAX_PARTNERS_PER_REQUEST` partners, and a time range inside what the rollups keep.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from services.vocabulary import ROLES, is_partner_id

__all__ = ["Principal", "Scope", "ScopeError", "scope_for", "system_scope", "SYSTEM", "OPEN_ACCESS",
           "MAX_PARTNERS_PER_REQUEST", "MAX_RANGE_S", "MAX_FUTURE_S", "RETAINED_DAYS", "earliest_start"]

# What the day rollups keep (services/store/keys.RESOLUTIONS): no range may start before it.
RETAINED_DAYS = 730
MAX_RANGE_S = RETAINED_DAYS * 86400
# A range may end at most this far after now (nothing is stored in the future; bounded work).
MAX_FUTURE_S = 86400
MAX_PARTNERS_PER_REQUEST = 100

Role = Literal["admin", "staff", "partner_manager", "system"]


class ScopeError(ValueError):
    """A request the scope refuses: 400 (bad or over-limit input) or 403 (a partner the principal
    may not see, asked for explicitly), naming the field at fault."""

    def __init__(self, status: int, message: str, field: str):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


@dataclass(frozen=True)
class Principal:
    """The signed-in user (or token, or background job) a request acts for."""

    name: str
    role: Role
    partners: frozenset[str] = field(default_factory=frozenset)  # a partner manager's partners
    via: str = "session"  # session | token | oidc | open | system

    def __post_init__(self):
        if self.role not in (*ROLES, "system"):
            raise ValueError(f"unknown role {self.role!r}")

    @property
    def sees_every_partner(self) -> bool:
        return self.role in ("admin", "staff", "system")

    def visible_partners(self) -> frozenset[str] | None:
        """The partners this principal may see: None = every partner (admin, staff)."""
        return None if self.sees_every_partner else self.partners

    def may_see(self, partner_id: str) -> bool:
        """True when this principal may read `partner_id`'s data."""
        return self.sees_every_partner or partner_id in self.partners

    @property
    def is_admin(self) -> bool:
        return self.role in ("admin", "system")


SYSTEM = Principal("system", "system", via="system")  # the collector and alert engine: no request behind them
OPEN_ACCESS = Principal("open access", "admin", via="open")  # LULUPAY_AUTH=open (development only)


@dataclass(frozen=True)
class Scope:
    """What one read may cover: the principal, the partners (None = every partner, only for a
    principal that sees them all; an empty tuple = nothing), and the range [start, end)."""

    principal: Principal
    partners: tuple[str, ...] | None
    start: float = 0.0
    end: float = 0.0

    def __post_init__(self):
        if self.partners is None and not self.principal.sees_every_partner:
            raise ValueError("only a principal that sees every partner may read every partner")

    def partner_list(self) -> list[str] | None:
        """The partner ids as a list (None = every partner)."""
        return None if self.partners is None else list(self.partners)

    @property
    def is_empty(self) -> bool:
        """True when the scope covers no partner at all."""
        return self.partners is not None and not self.partners

    def cache_key(self) -> tuple:
        """Minute-aligned range and partners: the rollups are no finer, so viewers refreshing the
        same filters within a minute share one cached result."""
        return (math.floor(self.start / 60), math.ceil(self.end / 60), self.partner_list())

    def narrowed(self, partners: Iterable[str]) -> "Scope":
        """The same principal and range over those of `partners` this scope holds (never wider)."""
        wanted = set(partners)
        held = wanted if self.partners is None else wanted & set(self.partners)
        return replace(self, partners=tuple(sorted(held)))

    def within(self, start: float, end: float) -> "Scope":
        """The same partners over another range (e.g. the previous period); not re-bounded, so
        only for ranges the service derives itself."""
        return replace(self, start=start, end=end)


def earliest_start(now: float) -> float:
    """The earliest start a range may have: the first day the day rollups still keep."""
    return math.floor(now / 86400) * 86400 - (RETAINED_DAYS - 1) * 86400


def _partner_ids(requested: Iterable[object]) -> list[str]:
    ids: list[str] = []
    for value in requested:
        if not is_partner_id(value):
            shown = value if isinstance(value, str) and len(value) <= 80 else type(value).__name__
            raise ScopeError(400, f"partner: {shown!r} is not a partner id (lowercase letters, digits, '-' and '_', "
                                  "at most 64 characters)", "partner")
        ids.append(value)
        if len(ids) > MAX_PARTNERS_PER_REQUEST:
            raise ScopeError(400, f"partner: at most {MAX_PARTNERS_PER_REQUEST} partners per request", "partner")
    return ids


def scope_for(principal: Principal | None, *, requested: Iterable[object] = (), start: float = 0.0,
              end: float = 0.0, now: float | None = None, explicit: Literal["deny", "drop"] = "deny") -> Scope:
    """The scope of a read by `principal` of the `requested` partners (none = every partner it may
    see) over [start, end). The one "requested ∩ visible" rule:

    - no principal → ScopeError 401 (fail closed: a code path without a principal reads nothing);
    - a requested id that is not a partner id, or too many → 400 `partner`;
    - a requested partner the principal may not see → 403 `partner` (`explicit="deny"`: the API,
      exports, /ws) or silently left out (`explicit="drop"`: pages and callbacks show nothing of it);
    - with `now`, the range is bounded: start < end, start not before what the rollups keep, end
      at most a day ahead, at most `MAX_RANGE_S` long (400 `from` / `to`)."""
    if principal is None:
        raise ScopeError(401, "sign in first", "Authorization")
    ids = _partner_ids(requested)
    if now is not None:
        _check_range(start, end, now)
    visible = principal.visible_partners()
    if not ids:
        partners = None if visible is None else tuple(sorted(visible))
        return Scope(principal, partners, start, end)
    hidden = [pid for pid in ids if visible is not None and pid not in visible]
    if hidden and explicit == "deny":
        raise ScopeError(403, "partner: a partner asked for is not among the partners you may see", "partner")
    return Scope(principal, tuple(sorted({pid for pid in ids if pid not in hidden})), start, end)


def _check_range(start: float, end: float, now: float) -> None:
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ScopeError(400, "from/to: must be finite times", "from")
    if start >= end:
        raise ScopeError(400, "from must be earlier than to", "from")
    earliest = earliest_start(now)
    if start < earliest:
        raise ScopeError(400, f"from: the rollups keep {RETAINED_DAYS} days; the earliest start is "
                              f"{_iso(earliest)}", "from")
    if end > now + MAX_FUTURE_S:
        raise ScopeError(400, "to: at most one day after now", "to")


def _iso(ts: float) -> str:
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def system_scope(start: float = 0.0, end: float = 0.0, partners: Iterable[str] | None = None) -> Scope:
    """A scope of the deployment's own background work (collector, alert engine, seeding checks,
    benchmarks): every partner, or the ones given. Never derived from a request."""
    ids = None if partners is None else tuple(sorted(set(partners)))
    return Scope(SYSTEM, ids, start, end)
