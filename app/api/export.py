"""Full exports: `GET /api/v1/export/<dataset>.<fmt>` streamed as CSV, JSON or NDJSON, scoped like
every read (columns: docs/exports.md)."""
from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flask import Blueprint, Response, stream_with_context

from app.api.errors import ApiError, install_handlers, services
from app.api.read import request_scope
from services.alerting.history import ALERT_COLUMNS
from services.export import FORMATS, MEDIA_TYPES, content_disposition, stream
from services.queries.buildlog import BUILD_COLUMNS, iter_builds, iter_raw_batches
from services.queries.system_export import SYSTEM_COLUMNS, iter_system_rows
from services.scope import Scope
from services.timerange import cover_range

__all__ = ["export", "DATASETS"]

export = install_handlers(Blueprint("export", __name__))


@dataclass(frozen=True)
class Dataset:
    """An exportable dataset: its columns, which of them are epoch-second timestamps, its rows."""

    columns: tuple[str, ...]
    time_columns: tuple[str, ...]
    rows: Callable[[Scope], Iterator[tuple]]


# Rows are made a stored batch at a time (a list comprehension per batch, chained in C): a
# generator step per row was a third of an export's time.
_STAGE_ROW = operator.itemgetter("build_id", "partner_id", "stage", "status", "ts", "duration_s")


def _stages(scope: Scope) -> Iterator[tuple]:
    return itertools.chain.from_iterable(list(map(_STAGE_ROW, events))
                                         for events in iter_raw_batches(services().store, scope, "build.stage"))


def _asset_row(e: dict) -> tuple:
    original, output = e["original_bytes"], e["output_bytes"]
    return (e["partner_id"], e["ts"], e["asset_type"], e["format"], e["density"], original, output,
            (1 - output / original) if original else None, e["quality_score"], e["duration_s"])


def _assets(scope: Scope) -> Iterator[tuple]:
    return itertools.chain.from_iterable(list(map(_asset_row, events))
                               for events in iter_raw_batches(services().store, scope, "asset.processed"))


def _failures(scope: Scope) -> Iterator[tuple]:
    for s in services().intelligence.failures(scope)["signatures"]:
        yield (s["signature"], s["pattern"], s["example"], s["count"], s["share"], ";".join(s["partners"]),
               s["first_seen"], s["last_seen"], s["new"], ";".join(s["stages"]), ";".join(s["categories"]))


def _partners(scope: Scope) -> Iterator[tuple]:
    for p in services().queries.partners(scope):
        yield (p["partner_id"], p["name"], p["tier"], p["status"], p["monthly_build_quota"], p["builds_this_month"],
               p["quota_used_ratio"], p["updated_ts"])


def _system(scope: Scope) -> Iterator[tuple]:
    """The deployment's host samples and probes (not partner data: the same rows for every scope)."""
    return iter_system_rows(services().store, scope.start, scope.end, services().clock())


DATASETS: dict[str, Dataset] = {
    "builds": Dataset(BUILD_COLUMNS, ("finished_at",), lambda scope: iter_builds(services().store, scope)),
    "stages": Dataset(("build_id", "partner_id", "stage", "status", "ts", "duration_s"), ("ts",), _stages),
    "assets": Dataset(("partner_id", "ts", "asset_type", "format", "density", "original_bytes", "output_bytes",
                       "compression_ratio", "quality_score", "duration_s"), ("ts",), _assets),
    "failures": Dataset(("signature", "pattern", "example", "count", "share", "partners", "first_seen", "last_seen",
                         "new", "stages", "categories"), ("first_seen", "last_seen"), _failures),
    "partners": Dataset(("partner_id", "name", "tier", "status", "monthly_build_quota", "builds_this_month",
                         "quota_used_ratio", "updated_at"), ("updated_at",), _partners),
    "system": Dataset(SYSTEM_COLUMNS, ("ts",), _system),
    "alerts": Dataset(ALERT_COLUMNS, ("ts", "started_at", "firing_at", "resolved_at"),
                      lambda scope: services().alerts.rows(scope)),
}


@export.get("/api/v1/export/<dataset>.<format>")
def get_export(dataset: str, format: str):  # noqa: A002 — the route's parameter names are the API's
    """One dataset of the period, streamed (no row cap, flat memory)."""
    dataset_name, fmt = dataset, format
    if dataset_name not in DATASETS:
        raise ApiError(400, f"dataset: one of {', '.join(DATASETS)}", "dataset")
    if fmt not in FORMATS:
        raise ApiError(400, f"format: one of {', '.join(FORMATS)}", "format")
    dataset = DATASETS[dataset_name]
    scope = request_scope()
    # The period the summary reports for the same arguments (edges aligned to the finest kept
    # resolution), so a builds export has exactly summary's builds_total rows.
    cover = cover_range(scope.start, scope.end, services().clock())
    scope = scope.within(cover.start, cover.end)
    rows = dataset.rows(scope)
    # The first rows are read here, so an unreachable store is a 503 rather than a cut-off body.
    head = list(itertools.islice(rows, 1))
    body = stream(fmt, dataset.columns, itertools.chain(head, rows), time_columns=dataset.time_columns)
    return Response(stream_with_context(body), mimetype=MEDIA_TYPES[fmt].split(";")[0],
                    content_type=MEDIA_TYPES[fmt],
                    headers={"Content-Disposition": content_disposition(dataset_name, fmt, scope.start, scope.end),
                             "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
