"""Asset processing analytics, pure functions of the `a` and `ah` rollup fields (docs/assets.md):
compression ratio, mean quality, bytes saved and processing time by asset type, format, density and
their combinations, the format mix and the same figures per time window.

Definitions (every figure a sum of stored increments, so exact on the rollups' boundaries):
compression ratio = 1 − Σ output_bytes ÷ Σ original_bytes (None when Σ original_bytes is 0);
bytes saved = Σ original_bytes − Σ output_bytes; mean quality = Σ quality_score ÷ assets;
mean time = Σ duration_s ÷ assets; p50/p95/p99 from the log-bucket histograms (services/sketch).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from services import sketch
from services.store import fields as rf
from services.vocabulary import ASSET_FORMATS, ASSET_TYPES, DENSITIES

__all__ = ["group_combinations", "measures_row", "by_dimension", "combination_rows", "type_histograms",
           "processing_percentiles", "shares", "asset_breakdown", "asset_trends", "top_saver", "QUANTILES",
           "DIMENSIONS"]

QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
# (name, position in the type × format × density key, the values in display order)
DIMENSIONS = (("asset_type", 0, ASSET_TYPES), ("format", 1, ASSET_FORMATS), ("density", 2, DENSITIES))
_EMPTY = {measure: 0 for measure in rf.ASSET_MEASURES}


def group_combinations(a_fields: Mapping[str, float]) -> dict[tuple[str, str, str], dict[str, float]]:
    """`a` fields → {(asset type, format, density): {n, ob, wb, q, ds}}."""
    groups: dict[tuple[str, str, str], dict[str, float]] = {}
    parse = rf.parse_asset
    for field, value in a_fields.items():
        measure, dims = parse(field)
        group = groups.get(dims)
        if group is None:
            group = groups[dims] = dict(_EMPTY)
        group[measure] += value
    return groups


def measures_row(m: Mapping[str, float]) -> dict:
    """The figures of one group of sums: assets, bytes before/after, saved, ratio, quality, time."""
    n, original, output = int(m.get("n", 0)), m.get("ob", 0), m.get("wb", 0)
    return {"assets": n, "original_bytes": int(original), "output_bytes": int(output),
            "saved_bytes": int(original - output),
            "compression_ratio": (1 - output / original) if original else None,
            "quality_avg": (m.get("q", 0) / n) if n else None,
            "duration_avg_s": (m.get("ds", 0) / n) if n else None}


def _sum(groups: Iterable[Mapping[str, float]]) -> dict[str, float]:
    total = dict(_EMPTY)
    for m in groups:
        for measure, value in m.items():
            total[measure] = total.get(measure, 0) + value
    return total


def by_dimension(groups: Mapping[tuple[str, str, str], Mapping[str, float]], position: int,
                 order: Sequence[str]) -> list[dict]:
    """One row per value of one dimension (vocabulary order, only values with assets), each with its
    share of the assets and of the bytes saved."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: dict(_EMPTY))
    for dims, m in groups.items():
        target = sums[dims[position]]
        for measure, value in m.items():
            target[measure] += value
    total = _sum(groups.values())
    saved_total = total["ob"] - total["wb"]
    rank = {value: i for i, value in enumerate(order)}
    rows = []
    for value in sorted(sums, key=lambda v: (rank.get(v, len(rank)), v)):
        row = measures_row(sums[value])
        if not row["assets"]:
            continue
        row["value"] = value
        row["asset_share"] = row["assets"] / total["n"]
        row["saved_share"] = (row["saved_bytes"] / saved_total) if saved_total else None
        rows.append(row)
    return rows


def combination_rows(groups: Mapping[tuple[str, str, str], Mapping[str, float]]) -> list[dict]:
    """One row per asset type × format × density with assets, in vocabulary order."""
    ranks = [{value: i for i, value in enumerate(order)} for _, _, order in DIMENSIONS]

    def key(dims):
        return tuple((r.get(v, len(r)), v) for r, v in zip(ranks, dims))

    rows = []
    for dims in sorted(groups, key=key):
        row = measures_row(groups[dims])
        if row["assets"]:
            rows.append({"asset_type": dims[0], "format": dims[1], "density": dims[2], **row})
    return rows


def type_histograms(ah_fields: Mapping[str, int]) -> dict[str, dict[int, int]]:
    """`ah` fields → {asset type: {bucket index: count}}."""
    hists: dict[str, dict[int, int]] = defaultdict(dict)
    for field, count in ah_fields.items():
        if count:
            asset_type, index = rf.parse_asset_bucket(field)
            hists[asset_type][index] = hists[asset_type].get(index, 0) + count
    return dict(hists)


def processing_percentiles(hists: Mapping[str, Mapping[int, int]], assets: Mapping[str, int]) -> list[dict]:
    """p50/p95/p99 processing time per asset type (vocabulary order) and for all types ("all"),
    with `timed`: the assets the histogram holds (fewer than `assets` when part of the period was
    ingested before the histograms existed)."""
    types = [t for t in ASSET_TYPES if assets.get(t) or hists.get(t)]
    types += sorted(t for t in set(assets) | set(hists) if t not in ASSET_TYPES and (assets.get(t) or hists.get(t)))
    series = [dict(hists.get(t, {})) for t in types]
    series.append(sketch.merge(series))
    values = sketch.quantiles_many(series, [q for _, q in QUANTILES])
    rows = []
    for name, hist, qs in zip([*types, "all"], series, values):
        count = sum(assets.values()) if name == "all" else int(assets.get(name, 0))
        rows.append({"asset_type": name, "assets": count, "timed": int(sum(hist.values())),
                     **{f"{label}_s": v for (label, _), v in zip(QUANTILES, qs)}})
    return rows if types else []


def shares(counts: Mapping[str, float]) -> dict[str, float | None]:
    """Each key's share of the total (None for every key when the total is 0)."""
    total = sum(counts.values())
    return {k: (v / total if total else None) for k, v in counts.items()}


def asset_breakdown(a_fields: Mapping[str, float], ah_fields: Mapping[str, int]) -> dict:
    """Everything the period's panels show: totals, by type / format / density, every combination,
    processing-time percentiles per type, and the format mix."""
    groups = group_combinations(a_fields)
    out = {"total": measures_row(_sum(groups.values())), "combinations": combination_rows(groups)}
    for name, position, order in DIMENSIONS:
        out[f"by_{name}"] = by_dimension(groups, position, order)
    per_type = {row["value"]: row["assets"] for row in out["by_asset_type"]}
    out["times"] = processing_percentiles(type_histograms(ah_fields), per_type)
    out["format_mix"] = {row["value"]: row["asset_share"] for row in out["by_format"]}
    return out


def asset_trends(windows: Sequence[tuple[int, Mapping[str, float], Mapping[str, int]]]) -> dict:
    """Per window (ts, `a` fields, `ah` fields): assets, bytes before/after, saved, compression
    ratio, assets and share per format, and p50/p95/p99 processing time per asset type."""
    out = {"ts": [], "assets": [], "original_bytes": [], "output_bytes": [], "saved_bytes": [],
           "compression_ratio": [], "formats": {f: [] for f in ASSET_FORMATS},
           "format_shares": {f: [] for f in ASSET_FORMATS}}
    hists_per_window: list[dict[str, dict[int, int]]] = []
    for ts, a_fields, ah_fields in windows:
        groups = group_combinations(a_fields)
        row = measures_row(_sum(groups.values()))
        out["ts"].append(ts)
        for key in ("assets", "original_bytes", "output_bytes", "saved_bytes", "compression_ratio"):
            out[key].append(row[key])
        per_format = {f: 0 for f in ASSET_FORMATS}  # ingest accepts these formats only
        for dims, m in groups.items():
            per_format[dims[1]] += int(m["n"])
        for f, share in shares(per_format).items():
            out["formats"][f].append(per_format[f])
            out["format_shares"][f].append(share)
        hists_per_window.append(type_histograms(ah_fields))
    types = [t for t in ASSET_TYPES if any(t in h for h in hists_per_window)]
    out["times"] = {}
    for t in types:
        values = sketch.quantiles_many([h.get(t, {}) for h in hists_per_window], [q for _, q in QUANTILES])
        out["times"][t] = {label: [v[i] for v in values] for i, (label, _) in enumerate(QUANTILES)}
    return out


def top_saver(rows: Sequence[dict]) -> dict | None:
    """The row that saved the most bytes (ties: the first in order), None when nothing was saved."""
    best = None
    for row in rows:
        if row["saved_bytes"] > 0 and (best is None or row["saved_bytes"] > best["saved_bytes"]):
            best = row
    return best
