"""Alerting: the history of alert state changes (history.py). The rules engine, escalation,
notifications and silences (issue #14) build on the same history."""
