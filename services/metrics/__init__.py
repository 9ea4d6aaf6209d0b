"""Prometheus metrics of the app (table: docs/metrics.md).

* `families` — every process family (counters, histograms, in-flight gauges) on the default
  registry; under gunicorn `PROMETHEUS_MULTIPROC_DIR` is set before this package is imported.
* `record` — how accepted events move them (grouped per batch).
* `labels` — bounded `partner_id` label values.
* `exposition` — `/metrics`: the process families plus the deployment families read from the
  collector's snapshot in the store (every instance exposes the same values: aggregate with `max`).
"""
from services.metrics.exposition import (CONTENT_TYPE_LATEST, ProcessFamilies, SnapshotCollector, exposition,
                                         snapshot_families)
from services.metrics.families import *  # noqa: F401,F403 — the families are this package's surface
from services.metrics.families import __all__ as _families
from services.metrics.labels import OTHER, PartnerLabels
from services.metrics.record import observe_many, record_events

__all__ = [*_families, "CONTENT_TYPE_LATEST", "ProcessFamilies", "SnapshotCollector", "exposition",
           "snapshot_families", "OTHER", "PartnerLabels", "observe_many", "record_events"]
