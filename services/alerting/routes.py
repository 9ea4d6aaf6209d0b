"""Where and when notifications go (docs/alerting.md#routing-and-grouping): the `receivers` and the
`route` tree of the rules file, which route(s) an alert takes, the group it joins (`group_key`)
and, as pure functions of `now`, when a group is due a notification (`GroupSchedule`). The
semantics are Alertmanager's, simplified where said."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import Field, InstanceOf, field_validator, model_validator

from services.alerting.fields import LIMITS, RECEIVER_NAME_RE, Model, bounded_duration, http_url, label_names
from services.alerting.silences import Matcher

__all__ = ["Receiver", "Route", "MatchedRoute", "routes_for", "group_labels", "group_key", "GroupSchedule",
           "DEFAULT_TIMING"]

# Alertmanager's defaults, for a root route that does not say.
DEFAULT_TIMING = {"group_wait_s": 30, "group_interval_s": 300, "repeat_interval_s": 4 * 3600}
DEFAULT_GROUP_BY = ("alertname",)


class Receiver(Model):
    """Where notifications go: exactly one of webhook_url (Alertmanager webhook JSON), slack_url
    (Slack incoming webhook) or alertmanager_url (an Alertmanager, POST /api/v2/alerts)."""

    name: str
    webhook_url: str | None = None
    slack_url: str | None = None
    alertmanager_url: str | None = None
    send_resolved: bool = True
    max_alerts: int = Field(0, ge=0, le=1000)  # alerts per webhook notification, 0 = all (truncatedAlerts)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not RECEIVER_NAME_RE.fullmatch(value):
            raise ValueError("letters, digits, '_', '.' and '-', at most 64 characters")
        return value

    @field_validator("webhook_url", "slack_url", "alertmanager_url", mode="before")
    @classmethod
    def _urls(cls, value: object) -> str | None:
        return http_url(value)

    @field_validator("alertmanager_url")
    @classmethod
    def _base(cls, value: str | None) -> str | None:
        if value is not None and "/api/" in value:
            raise ValueError("the Alertmanager's base URL (http://host:9093): /api/v2/alerts is added when sending")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> "Receiver":
        given = [k for k in ("webhook_url", "slack_url", "alertmanager_url") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("webhook_url: give exactly one of webhook_url, slack_url, alertmanager_url")
        return self

    @property
    def kind(self) -> Literal["webhook", "slack", "alertmanager"]:
        """webhook, slack or alertmanager."""
        return "webhook" if self.webhook_url else "slack" if self.slack_url else "alertmanager"

    @property
    def url(self) -> str:
        """The configured URL (delivery adds /api/v2/alerts to an Alertmanager's: senders.target_url)."""
        return self.webhook_url or self.slack_url or self.alertmanager_url


class Route(Model):
    """A node of the route tree: the root matches every alert; a child matches when all its
    `matchers` do; the first matching child wins unless it says `continue: true`; a node none of
    whose children match takes the alert itself. Unset receiver, group_by and timings inherit."""

    receiver: str | None = None
    group_by: list[str] | None = Field(None, max_length=LIMITS["group_by"])
    group_wait_s: int | None = Field(None, alias="group_wait")
    group_interval_s: int | None = Field(None, alias="group_interval")
    repeat_interval_s: int | None = Field(None, alias="repeat_interval")
    matchers: list[InstanceOf[Matcher]] = Field(default_factory=list, max_length=LIMITS["matchers"])
    continue_: bool = Field(False, alias="continue")
    routes: list["Route"] = Field(default_factory=list, max_length=LIMITS["routes"])

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, value: list[str] | None) -> list[str] | None:
        if value is None or value == ["..."]:
            return value  # "...": every label (one group per alert)
        return label_names(["alertname" if name == "rule" else name for name in value])

    @field_validator("group_wait_s", "group_interval_s", "repeat_interval_s", mode="before")
    @classmethod
    def _timing(cls, value: object, info) -> int | None:
        lowest = 0 if info.field_name == "group_wait_s" else 1
        return None if value is None else bounded_duration(value, info.field_name, lowest)

    @field_validator("matchers", mode="before")
    @classmethod
    def _matchers(cls, value: object) -> list[Matcher]:
        if not isinstance(value, list):
            raise ValueError("must be a list like ['severity=\"critical\"']")
        return [Matcher.parse(m) if isinstance(m, str) else Matcher.from_dict(m) for m in value]


@dataclass(frozen=True)
class MatchedRoute:
    """A route an alert took, with everything inherited filled in; `path` is Alertmanager's route key."""

    receiver: str
    group_by: tuple[str, ...]
    group_wait_s: int
    group_interval_s: int
    repeat_interval_s: int
    path: str = "{}"

    def with_receiver(self, receiver: str) -> "MatchedRoute":
        """The same grouping and timing for another receiver (an escalation step's), its own path."""
        return replace(self, receiver=receiver, path=f'{self.path}/{{receiver="{receiver}"}}')


def _resolved(route: Route, parent: MatchedRoute | None) -> MatchedRoute:
    if parent is None:
        return MatchedRoute(route.receiver or "", tuple(route.group_by or DEFAULT_GROUP_BY),
                            *(getattr(route, k) if getattr(route, k) is not None else v
                              for k, v in DEFAULT_TIMING.items()))
    own = ",".join(str(m) for m in route.matchers)
    return MatchedRoute(
        route.receiver or parent.receiver,
        tuple(route.group_by) if route.group_by is not None else parent.group_by,
        *(getattr(route, k) if getattr(route, k) is not None else getattr(parent, k) for k in DEFAULT_TIMING),
        path=f"{parent.path}/{{{own}}}")


def routes_for(route: Route | None, labels: Mapping[str, str]) -> list[MatchedRoute]:
    """The routes an alert with `labels` takes (none without a route: recorded, not notified)."""
    def walk(node: Route, parent: MatchedRoute | None) -> list[MatchedRoute]:
        if not all(m.matches(labels) for m in node.matchers):
            return []
        here = _resolved(node, parent)
        found: list[MatchedRoute] = []
        for child in node.routes:
            taken = walk(child, here)
            found += taken
            if taken and not child.continue_:
                break
        return found or [here]
    return [] if route is None else walk(route, None)


def group_labels(route: MatchedRoute, labels: Mapping[str, str]) -> dict[str, str]:
    """The labels that name an alert's group on `route` (its group_by labels the alert has)."""
    if route.group_by == ("...",):
        return dict(sorted(labels.items()))
    return {name: labels[name] for name in sorted(route.group_by) if name in labels}


def group_key(route: MatchedRoute, labels: Mapping[str, str]) -> str:
    """Alertmanager's group key: the route path, then the group labels, `{}/{…}:{alertname="X"}`."""
    pairs = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in group_labels(route, labels).items())
    return f"{route.path}:{{{pairs}}}"


@dataclass(frozen=True)
class GroupSchedule:
    """When a group is due a notification, from its route's timing: a new group group_wait after it
    appeared, a changed one group_interval after its last notification, an unchanged group with
    firing alerts repeat_interval after it (Alertmanager, but measured from the last notification
    rather than a group_interval tick)."""

    group_wait_s: int
    group_interval_s: int
    repeat_interval_s: int

    @classmethod
    def of(cls, route: MatchedRoute) -> "GroupSchedule":
        """The schedule of a matched route."""
        return cls(route.group_wait_s, route.group_interval_s, route.repeat_interval_s)

    def next_at(self, *, created_at: float, last_notified_at: float | None, last_change_at: float | None,
                firing: bool) -> float | None:
        """When the group is next due, or None: never notified and nothing firing (its alerts
        resolved unseen), or notified and nothing firing and nothing changed (done, drop it).
        A group holds the firing and resolved alerts of its key (pending ones are not notified):
        `last_change_at` is the latest `changed_at` of those, `firing` whether any of them fires."""
        if last_notified_at is None:
            return created_at + self.group_wait_s if firing else None
        if last_change_at is not None and last_change_at > last_notified_at:
            return last_notified_at + self.group_interval_s
        return last_notified_at + self.repeat_interval_s if firing else None

    def due(self, now: float, *, created_at: float, last_notified_at: float | None, last_change_at: float | None,
            firing: bool) -> bool:
        """True when the group should be notified at `now`."""
        at = self.next_at(created_at=created_at, last_notified_at=last_notified_at, last_change_at=last_change_at,
                          firing=firing)
        return at is not None and now >= at
