"""Asset processing reads (docs/assets.md): the period's figures by asset type, format, density and
their combinations, and the same per time window. Reads the `a` (counts and sums) and `ah`
(processing-time histograms per asset type) rollups; the arithmetic is `services.analytics.assets`."""
from __future__ import annotations

from services.analytics.assets import asset_breakdown, asset_trends
from services.queries.reader import QueryService
from services.scope import Scope
from services.timerange import cover_range

__all__ = ["AssetService", "ASSET_KINDS"]

ASSET_KINDS = ("a", "ah")


class AssetService:
    """The /assets page's reads; every one takes a Scope (a partner manager's reads cover their
    partners' own rollups only)."""

    def __init__(self, queries: QueryService):
        self.queries = queries

    def breakdown(self, scope: Scope) -> dict:
        """The period's totals, rows by type / format / density, every type × format × density,
        processing-time percentiles per type and the format mix; `from`/`to`: the range the rollups
        cover (edges aligned like the summary's)."""
        cover = cover_range(scope.start, scope.end, self.queries.clock())
        totals = self.queries.totals(cover, scope, kinds=ASSET_KINDS)
        return {"from": cover.start, "to": cover.end, **asset_breakdown(totals.a, totals.ah)}

    def trends(self, scope: Scope, step_s: int | None = None) -> dict:
        """Per window (the reader's step and resolution for the range; None = auto): assets, bytes,
        saved, ratio, assets and share per format, p50/p95/p99 per asset type."""
        step, windows = self.queries.windows(scope, step_s, ASSET_KINDS)
        return {"step_s": step, **asset_trends([(ts, totals.a, totals.ah) for ts, totals in windows])}
