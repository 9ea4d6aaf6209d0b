"""Exact figures computed straight from raw events, the way a person would (DESIGN.md definitions)."""
from __future__ import annotations

import random

import numpy as np

STAGES = ("asset_processing", "dependency_resolution", "compilation", "packaging", "signing", "upload")


def reference_summary(events: list[dict], start: float, end: float, partners=None) -> dict:
    """Summary of accepted events with ts in [start, end), for `partners` (None = all)."""
    def keep(e):
        return start <= e["ts"] < end and (partners is None or e["partner_id"] in partners)

    finished = [e for e in events if e["type"] == "build.finished" and keep(e)]
    assets = [e for e in events if e["type"] == "asset.processed" and keep(e)]
    ok = [e for e in finished if e["status"] == "success"]
    bad = [e for e in finished if e["status"] == "failed"]
    completed = ok + bad
    durations = [e["duration_s"] for e in completed]
    original = sum(e["original_bytes"] for e in assets)
    return {
        "builds_total": len(finished),
        "builds_succeeded": len(ok),
        "builds_failed": len(bad),
        "builds_cancelled": len(finished) - len(completed),
        "success_rate": len(ok) / len(completed) if completed else None,
        "duration_avg_s": sum(durations) / len(durations) if durations else None,
        "duration_p50_s": float(np.percentile(durations, 50)) if durations else None,
        "duration_p95_s": float(np.percentile(durations, 95)) if durations else None,
        "duration_p99_s": float(np.percentile(durations, 99)) if durations else None,
        "active_partners": len({e["partner_id"] for e in finished}),
        "assets_processed": len(assets),
        "asset_compression_ratio_avg": 1 - sum(e["output_bytes"] for e in assets) / original if original else None,
        "asset_quality_avg": sum(e["quality_score"] for e in assets) / len(assets) if assets else None,
    }


def random_events(rng: random.Random, n_builds: int, start: float, end: float, partners: list[str]) -> list[dict]:
    """Builds (started, stages, finished) and assets with random, unaligned timestamps in [start, end)."""
    events = []
    for i in range(n_builds):
        pid = rng.choice(partners)
        ts = rng.uniform(start, end - 1)
        build_id = f"b{i}-{rng.random():.6f}"
        build_type = rng.choice(["debug", "release", "store"])
        events.append({"id": f"{build_id}-s", "type": "build.started", "ts": ts, "partner_id": pid,
                       "build_id": build_id, "build_type": build_type, "app_version": "1.0.0"})
        for k, stage in enumerate(STAGES):
            events.append({"id": f"{build_id}-{k}", "type": "build.stage", "ts": ts + k * 0.1, "partner_id": pid,
                           "build_id": build_id, "stage": stage, "status": "success",
                           "duration_s": round(rng.lognormvariate(3, 1), 3)})
        status = rng.choices(["success", "failed", "cancelled"], [0.85, 0.12, 0.03])[0]
        finished = {"id": f"{build_id}-f", "type": "build.finished", "ts": ts + 0.9, "partner_id": pid,
                    "build_id": build_id, "build_type": build_type, "status": status,
                    "duration_s": rng.lognormvariate(5.5, 0.6)}
        if status == "failed":
            finished.update(failed_stage=rng.choice(STAGES), error_category=rng.choice(["gradle", "signing", "infra"]),
                            error_message="boom")
        events.append(finished)
        if rng.random() < 0.5:
            original = rng.randint(1000, 2_000_000)
            events.append({"id": f"{build_id}-a", "type": "asset.processed", "ts": ts + 0.2, "partner_id": pid,
                           "asset_type": rng.choice(["icon", "splash", "logo"]), "format": rng.choice(["png", "webp"]),
                           "density": rng.choice(["hdpi", "xxhdpi", "any"]), "original_bytes": original,
                           "output_bytes": rng.randint(0, original), "quality_score": rng.uniform(60, 100),
                           "duration_s": rng.uniform(0.01, 2)})
    return events


def assert_summary_matches(actual: dict, expected: dict) -> None:
    """Counts exact, sums to float precision, percentiles within 2 %."""
    for key, want in expected.items():
        got = actual[key]
        if want is None or got is None:
            assert got == want, f"{key}: {got} != {want}"
        elif key.startswith("duration_p"):
            assert abs(got - want) <= 0.02 * want, f"{key}: {got} vs exact {want}"
        elif isinstance(want, int):
            assert got == want, f"{key}: {got} != {want}"
        else:
            assert abs(got - want) <= 1e-9 * max(1.0, abs(want)), f"{key}: {got} != {want}"
