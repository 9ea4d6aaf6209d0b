"""The alert rules file (`LULUPAY_ALERT_RULES`, reference: docs/alerting.md#rules-file): receivers,
the route tree and the rules, as validated pydantic models. `load_rules(path)` raises `RulesError`
naming the file, the rule (by name and index) or receiver, and the field at fault.

Shape and type checks are pydantic's; the checks across a rule's fields (its metric against its
partner and window use, templates against its labels) are `Rule`'s validator, and those across
the file (unique names, receivers that exist, the route tree) `RulesFile`'s (services/alerting/loading.py)."""
from __future__ import annotations

import math
import os
from typing import Any

from pydantic import Field, field_validator, model_validator

from services.alerting.catalogue import METRICS, format_duration, format_value, render_template, template_problem
from services.alerting.fields import (LIMITS, NAME_RE, Model, bounded_duration, label_names, one_of,
                                      parse_duration)
from services.alerting.routes import Receiver, Route
from services.vocabulary import ALERT_SEVERITIES, is_partner_id

__all__ = ["parse_duration", "Receiver", "Route", "EscalationStep", "Rule", "RulesFile", "RulesError",
           "load_rules", "parse_rules", "render_summary", "render_description", "compare", "OPS",
           "RESERVED_LABELS", "LIMITS", "DEFAULT_SUMMARY"]

OPS = ("<", "<=", ">", ">=", "==", "!=")
RESERVED_LABELS = ("alertname", "severity", "partner_id")  # set by the engine, never by a rule's labels
DEFAULT_SUMMARY = "{{ rule }}: {{ value }} (threshold {{ threshold }})"


class EscalationStep(Model):
    """After `after` firing unacknowledged: the alert takes `severity` and/or is also sent to `receiver`."""

    after_s: int = Field(alias="after")
    severity: str | None = None
    receiver: str | None = None

    @field_validator("after_s", mode="before")
    @classmethod
    def _after(cls, value: object) -> int:
        return bounded_duration(value, "escalation_after_s")

    @field_validator("severity")
    @classmethod
    def _severity(cls, value: str | None) -> str | None:
        return None if value is None else one_of(value, ALERT_SEVERITIES)

    @model_validator(mode="after")
    def _something(self) -> "EscalationStep":
        if self.severity is None and self.receiver is None:
            raise ValueError("severity: a step needs a severity, a receiver or both")
        return self


class Rule(Model):
    """One alert condition: `metric` (over `window`) `op` `threshold`, pending `for`, kept firing
    `keep_firing_for`; per partner, about one partner, or about the deployment."""

    name: str
    metric: str
    window_s: int | None = Field(None, alias="window")
    op: str
    threshold: float
    for_s: int = Field(0, alias="for")
    keep_firing_for_s: int = Field(0, alias="keep_firing_for")
    severity: str = "warning"
    per_partner: bool = False
    partner: str | None = None
    min_builds: int = Field(0, ge=0, le=LIMITS["min_builds"])
    summary: str = Field(DEFAULT_SUMMARY, max_length=LIMITS["summary_chars"])
    description: str = Field("", max_length=LIMITS["description_chars"])
    labels: dict[str, str] = Field(default_factory=dict, max_length=LIMITS["labels"])
    escalate: list[EscalationStep] = Field(default_factory=list, max_length=LIMITS["escalation_steps"])

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.fullmatch(value):
            raise ValueError("must match [A-Za-z_][A-Za-z0-9_]* (at most 128 characters)")
        return value

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value[:40]!r} (known: {', '.join(METRICS)})")
        return value

    @field_validator("op", mode="before")
    @classmethod
    def _op(cls, value: object) -> str:
        return one_of(value, OPS)

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, value: object) -> str:
        return one_of(value, ALERT_SEVERITIES)

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("must be a number")
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return float(value)

    @field_validator("window_s", mode="before")
    @classmethod
    def _window(cls, value: object) -> int | None:
        if value is None:
            return None
        seconds = bounded_duration(value, "window_s", 60)
        if seconds % 60:
            raise ValueError("a whole number of minutes (the rollups are per minute)")
        return seconds

    @field_validator("for_s", "keep_firing_for_s", mode="before")
    @classmethod
    def _hold(cls, value: object, info) -> int:
        return bounded_duration(value, info.field_name)

    @field_validator("partner")
    @classmethod
    def _partner(cls, value: str | None) -> str | None:
        if value is not None and not is_partner_id(value):
            raise ValueError("not a partner id (lowercase letters, digits, '-' and '_', at most 64 characters)")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        label_names(list(value))
        for name, text in value.items():
            if name in RESERVED_LABELS or name.startswith("__"):
                raise ValueError(f"{name!r} is set by the engine ({', '.join(RESERVED_LABELS)}; no __ names)")
            if len(text) > LIMITS["label_value_chars"]:
                raise ValueError(f"{name}: at most {LIMITS['label_value_chars']} characters")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Rule":
        spec = METRICS[self.metric]
        if self.per_partner and self.partner:
            raise ValueError("partner: give either per_partner: true or partner, not both")
        if spec.partner == "none" and (self.per_partner or self.partner):
            raise ValueError(f"per_partner: metric {self.metric} is about the deployment, not a partner")
        if spec.partner == "required" and not (self.per_partner or self.partner):
            raise ValueError(f"per_partner: metric {self.metric} needs per_partner: true or a partner")
        if spec.window and self.window_s is None:
            raise ValueError(f"window: required for metric {self.metric} (e.g. 5m)")
        if not spec.window and self.window_s is not None:
            raise ValueError(f"window: metric {self.metric} takes no window")
        if not spec.lo <= self.threshold <= spec.hi:
            raise ValueError(f"threshold: {self.threshold:g} is outside {self.metric}'s range "
                             f"{spec.lo:g} to {spec.hi:g} ({spec.unit})")
        if self.min_builds and not spec.build_based:
            raise ValueError(f"min_builds: only for build metrics (success_rate, build_p95_s), not {self.metric}")
        afters = [step.after_s for step in self.escalate]
        if afters != sorted(set(afters)):
            raise ValueError("escalate: steps in increasing order of after, each after different")
        partner = bool(self.per_partner or self.partner)
        for field_name in ("summary", "description"):
            problem = template_problem(getattr(self, field_name), [*RESERVED_LABELS[:2], *self.labels,
                                       *(["partner_id"] if partner else [])], partner=partner, window=spec.window)
            if problem:
                raise ValueError(f"{field_name}: {problem}")
        return self

    def alert_labels(self, partner_id: str | None = None) -> dict[str, str]:
        """The labels of this rule's alert (about `partner_id`, or the rule's own partner)."""
        pid = partner_id or self.partner
        return {"alertname": self.name, "severity": self.severity, **({"partner_id": pid} if pid else {}),
                **self.labels}


class RulesFile(Model):
    """The whole file: receivers and route optional (without them alerts are recorded, not sent)."""

    receivers: list[Receiver] = Field(default_factory=list, max_length=LIMITS["receivers"])
    route: Route | None = None
    rules: list[Rule] = Field(default_factory=list, max_length=LIMITS["rules"])

    @model_validator(mode="after")
    def _across(self) -> "RulesFile":
        from services.alerting.loading import cross_file_problems
        problems = cross_file_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def receiver(self, name: str) -> Receiver:
        """The receiver called `name` (KeyError when there is none)."""
        for receiver in self.receivers:
            if receiver.name == name:
                return receiver
        raise KeyError(name)


class RulesError(ValueError):
    """A rules file that cannot be used; `problems` lists each one as a full line."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_rules(data: Any, source: str = "<rules>") -> RulesFile:
    """A RulesFile from already-parsed YAML data; RulesError names `source`, rule and field."""
    from services.alerting.loading import validate
    return validate(data, source)


def load_rules(path: "str | os.PathLike") -> RulesFile:
    """Read, parse (yaml.safe_load, duplicate keys refused) and validate the rules file at `path`."""
    from services.alerting.loading import read_yaml, validate
    return validate(read_yaml(path), str(path))


def compare(op: str, value: float | None, threshold: float) -> bool:
    """`value op threshold` (False when the value is undefined)."""
    if value is None or not math.isfinite(value):
        return False
    return {"<": value < threshold, "<=": value <= threshold, ">": value > threshold, ">=": value >= threshold,
            "==": value == threshold, "!=": value != threshold}[op]


def _values(rule: Rule, value: float | None, partner_id: str | None, labels: dict[str, str]) -> dict[str, str]:
    return {"value": format_value(rule.metric, value), "threshold": format_value(rule.metric, rule.threshold),
            "window": format_duration(rule.window_s), "partner_id": partner_id or rule.partner or "",
            "rule": rule.name, "severity": labels.get("severity", rule.severity)}


def render_summary(rule: Rule, value: float | None, partner_id: str | None = None,
                   labels: dict[str, str] | None = None) -> str:
    """The rule's summary for one alert (values written by catalogue.format_value)."""
    labels = labels if labels is not None else rule.alert_labels(partner_id)
    return render_template(rule.summary, _values(rule, value, partner_id, labels), labels)


def render_description(rule: Rule, value: float | None, partner_id: str | None = None,
                       labels: dict[str, str] | None = None) -> str:
    """The rule's description for one alert ("" when it has none)."""
    labels = labels if labels is not None else rule.alert_labels(partner_id)
    return render_template(rule.description, _values(rule, value, partner_id, labels), labels)
