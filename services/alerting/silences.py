"""Label matchers and silences (docs/alerting.md#silences), pure: a silence suppresses the
notifications of every alert whose labels all its matchers match, from `starts_at` to `ends_at`,
and then expires by itself. Matchers follow Alertmanager: `=`, `!=`, `=~`, `!~`; a regex is a
full (anchored) match, computed in time linear in the label value (services/alerting/linear_regex.py,
as Alertmanager's RE2); a label the alert does not have matches as the empty string."""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.alerting.linear_regex import LinearRegex, compile_linear

__all__ = ["Matcher", "Silence", "matches", "silenced_by", "LABEL_NAME_RE", "MAX_REGEX_CHARS",
           "MAX_SILENCE_S", "MAX_MATCHERS"]

LABEL_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
MAX_REGEX_CHARS = 256
MAX_VALUE_CHARS = 1024
MAX_MATCHERS = 32
MAX_SILENCE_S = 90 * 86400  # a silence lasts at most 90 days: every silence expires by itself
_OPS = {"=": (False, True), "!=": (False, False), "=~": (True, True), "!~": (True, False)}
_MATCHER_RE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^"\s]*))\s*')
# An innermost group followed by a quantifier (its contents then checked for one), e.g. (a+)+: the
# classic backtracking blow-up, still refused (no silence needs one); the cost bound itself is that
# regexes are matched by LinearRegex, never by `re`.
_QUANTIFIED_GROUP_RE = re.compile(r"\(([^()]*)\)[+*{]")


@dataclass(frozen=True)
class Matcher:
    """One label condition: `name` equal to (or, `is_regex`, fully matching) `value`; `is_equal`
    False negates it. Invalid names, over-long values and bad regexes raise ValueError."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True
    _pattern: LinearRegex | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        shown = f"matcher {self.name!r}" if isinstance(self.name, str) else "matcher"
        if not isinstance(self.name, str) or not LABEL_NAME_RE.fullmatch(self.name):
            raise ValueError(f"{shown}: the label name must match [A-Za-z_][A-Za-z0-9_]* (at most 128 characters)")
        if not isinstance(self.value, str):
            raise ValueError(f"{shown}: the value must be a string")
        if not isinstance(self.is_regex, bool) or not isinstance(self.is_equal, bool):
            raise ValueError(f"{shown}: is_regex and is_equal must be true or false")
        if self.is_regex:
            if len(self.value) > MAX_REGEX_CHARS:
                raise ValueError(f"{shown}: a regex has at most {MAX_REGEX_CHARS} characters")
            if any(re.search(r"[+*}]", g.group(1)) for g in _QUANTIFIED_GROUP_RE.finditer(self.value)):
                raise ValueError(f"{shown}: nested quantifiers such as (a+)+ are refused")
            try:
                re.compile(self.value)
            except re.error as err:
                raise ValueError(f"{shown}: invalid regex {self.value!r}: {err}") from None
            try:
                object.__setattr__(self, "_pattern", compile_linear(self.value))
            except ValueError as err:
                raise ValueError(f"{shown}: regex {self.value[:80]!r}: {err}") from None
        elif len(self.value) > MAX_VALUE_CHARS:
            raise ValueError(f"{shown}: a value has at most {MAX_VALUE_CHARS} characters")

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when `labels` satisfy this matcher (a missing label is the empty string)."""
        actual = labels.get(self.name, "")
        hit = self._pattern.fullmatch(actual) if self._pattern else actual == self.value
        return hit == self.is_equal

    @classmethod
    def parse(cls, text: str) -> "Matcher":
        """An Alertmanager-style matcher string: `severity="critical"`, `alertname=~"LuluPay.*"`."""
        match = _MATCHER_RE.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"{str(text)[:80]!r} is not a matcher like severity=\"critical\" (=, !=, =~, !~)")
        name, op, quoted, bare = match.groups()
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        is_regex, is_equal = _OPS[op]
        return cls(name, value, is_regex, is_equal)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Matcher":
        """From `{name, value, is_regex?, is_equal?}` (what the API and storage use)."""
        if not isinstance(data, Mapping) or set(data) - {"name", "value", "is_regex", "is_equal"}:
            raise ValueError("a matcher is {name, value, is_regex, is_equal}")
        return cls(data.get("name"), data.get("value"), data.get("is_regex", False), data.get("is_equal", True))

    def to_dict(self) -> dict:
        """`{name, value, is_regex, is_equal}`."""
        return {"name": self.name, "value": self.value, "is_regex": self.is_regex, "is_equal": self.is_equal}

    def __str__(self) -> str:
        op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{op[(self.is_regex, self.is_equal)]}"{escaped}"'


@dataclass(frozen=True)
class Silence:
    """Suppresses notifications of the alerts all `matchers` match while starts_at <= now < ends_at."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    author: str
    comment: str = ""
    created_at: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "matchers", tuple(self.matchers))
        if not isinstance(self.id, str) or not 0 < len(self.id) <= 64:
            raise ValueError("id: 1 to 64 characters")
        if not self.matchers or len(self.matchers) > MAX_MATCHERS:
            raise ValueError(f"matchers: 1 to {MAX_MATCHERS} matchers")
        if not all(isinstance(m, Matcher) for m in self.matchers):
            raise ValueError("matchers: Matcher objects")
        if all(m.matches({}) for m in self.matchers):
            raise ValueError("matchers: at least one must not match an empty label (it would silence everything)")
        for name in ("starts_at", "ends_at"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}: a finite time (epoch seconds)")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at: must be after starts_at")
        if self.ends_at - self.starts_at > MAX_SILENCE_S:
            raise ValueError(f"ends_at: a silence lasts at most {MAX_SILENCE_S // 86400} days")
        if not isinstance(self.author, str) or not self.author.strip() or len(self.author) > 128:
            raise ValueError("author: 1 to 128 characters")
        if not isinstance(self.comment, str) or len(self.comment) > 1024:
            raise ValueError("comment: at most 1024 characters")

    def state(self, now: float) -> str:
        """pending (not started), active or expired, at `now`."""
        return "pending" if now < self.starts_at else "active" if now < self.ends_at else "expired"

    def to_dict(self) -> dict:
        """A JSON-safe dict (what storage and the API hold)."""
        return {"id": self.id, "matchers": [m.to_dict() for m in self.matchers], "starts_at": self.starts_at,
                "ends_at": self.ends_at, "author": self.author, "comment": self.comment,
                "created_at": self.created_at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Silence":
        """The inverse of to_dict (ValueError on a malformed dict)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("matchers"), list):
            raise ValueError("matchers: a list of {name, value, is_regex, is_equal}")
        return cls(id=data.get("id"), matchers=tuple(Matcher.from_dict(m) for m in data["matchers"]),
                   starts_at=data.get("starts_at"), ends_at=data.get("ends_at"), author=data.get("author"),
                   comment=data.get("comment") or "", created_at=data.get("created_at"))


def matches(silence: Silence, labels: Mapping[str, str], now: float) -> bool:
    """True when `silence` is active at `now` and all its matchers match `labels`."""
    return silence.starts_at <= now < silence.ends_at and all(m.matches(labels) for m in silence.matchers)


def silenced_by(silences: Iterable[Silence], labels: Mapping[str, str], now: float) -> list[str]:
    """The ids of the silences that suppress an alert with `labels` at `now`, sorted."""
    return sorted(s.id for s in silences if matches(s, labels, now))
