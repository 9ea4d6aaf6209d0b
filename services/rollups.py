"""Turns validated events into one write plan: idempotency markers, raw-event partitions,
pre-aggregated rollup increments and live-state operations (applied by `services.store`)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import orjson

from services import sketch
from services.keys import ALL_SCOPE, RESOLUTIONS, Keys, day_of

__all__ = ["WritePlan", "plan_writes"]

_MARGIN_S = 120  # keys outlive their nominal keep time a little so a query at the edge finds them


@dataclass
class WritePlan:
    """Everything one batch writes; `payload()` is what the ingest script receives."""

    seen: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    seen_exat: dict[str, int] = field(default_factory=dict)
    incr: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    incrf: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    push: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    expire: dict[str, int] = field(default_factory=dict)
    index: dict[str, tuple[int, str]] = field(default_factory=dict)
    live: list[list] = field(default_factory=list)

    def seen_order(self) -> list[int]:
        """Event indexes in the order the script checks their markers."""
        return [i for fields in self.seen.values() for i in fields.values()]

    def payload(self) -> bytes:
        """JSON document for the ingest script."""
        return orjson.dumps({
            "seen": [[k, list(fields), self.seen_exat[k]] for k, fields in self.seen.items()],
            "incr": [[k, f, v] for (k, f), v in self.incr.items()],
            "incrf": [[k, f, repr(v)] for (k, f), v in self.incrf.items()],
            "push": [[k, [v.decode() for v in vals]] for k, vals in self.push.items()],
            "expire": [[k, t] for k, t in self.expire.items()],
            "zadd": [[key, score, member] for member, (score, key) in self.index.items()],
            "live": self.live,
        })


def plan_writes(events: list[dict], *, keys: Keys, now: float, retention_s: int, live_window_s: int) -> WritePlan:
    """Plan the writes of `events` (validated, normalised, none already stored)."""
    plan = WritePlan()
    incr, incrf, expire = plan.incr, plan.incrf, plan.expire
    rollup_key_cache: dict[tuple, list[str]] = {}
    live_from = now - live_window_s
    res_keep = [(r.name, r.step_s, r.keep_s) for r in RESOLUTIONS]

    def rollup_keys(kind: str, ts: float, partner: str) -> list[str]:
        """Keys of every kept resolution for this event, partner scope and all-partner scope."""
        cache_key = (kind, int(ts // 60), partner)
        found = rollup_key_cache.get(cache_key)
        if found is not None:
            return found
        out = []
        for name, step, keep in res_keep:
            bucket = int(ts // step) * step
            if bucket + step + keep <= now:
                continue
            exat = bucket + step + keep + _MARGIN_S
            for scope in (partner, ALL_SCOPE):
                key = keys.rollup(name, kind, bucket, scope)
                out.append(key)
                expire[key] = exat
        rollup_key_cache[cache_key] = out
        return out

    day_cache: dict[int, tuple[str, int]] = {}
    for position, event in enumerate(events):
        ts = event["ts"]
        kind = event["type"]
        partner = event["partner_id"]
        day_start = int(ts // 86400) * 86400
        day = day_cache.get(day_start)
        if day is None:
            day = day_cache[day_start] = (day_of(day_start), day_start)
        seen_key, seen_field = keys.seen(event["id"], day[0])
        plan.seen[seen_key][seen_field] = position
        plan.seen_exat[seen_key] = day_start + 86400 + retention_s
        raw_key = keys.raw(kind, day[0])
        plan.push[raw_key].append(orjson.dumps(event))
        expire[raw_key] = day_start + 86400 + retention_s
        plan.index[f"{kind}|{day[0]}"] = (day_start, keys.raw_days())

        if kind == "build.finished":
            status, build_type = event["status"], event["build_type"]
            for key in rollup_keys("b", ts, partner):
                incr[(key, f"n:{status}:{build_type}")] += 1
                if status != "cancelled":
                    incrf[(key, f"ds:{status}:{build_type}")] += event["duration_s"]
                if status == "failed":
                    incr[(key, f"fs:{event.get('failed_stage') or 'unknown'}")] += 1
                    incr[(key, f"ec:{event.get('error_category') or 'unknown'}")] += 1
                if key.endswith(":*"):
                    incr[(key, f"pc:{partner}:{status}")] += 1
            if status != "cancelled":
                bucket_field = str(sketch.bucket_of(event["duration_s"]))
                for key in rollup_keys("bh", ts, partner):
                    incr[(key, bucket_field)] += 1
            if ts >= live_from:
                plan.live.append(["F", keys.live_build(event["build_id"]), keys.live_done(event["build_id"]),
                                  keys.live_active(), keys.live_active(partner), event["build_id"],
                                  int(ts + live_window_s)])
        elif kind == "build.stage":
            stage, status = event["stage"], event["status"]
            for key in rollup_keys("s", ts, partner):
                incr[(key, f"n:{stage}:{status}")] += 1
                if status != "skipped":
                    incrf[(key, f"ds:{stage}")] += event["duration_s"]
            if status != "skipped":
                stage_field = f"{stage}:{sketch.bucket_of(event['duration_s'])}"
                for key in rollup_keys("sh", ts, partner):
                    incr[(key, stage_field)] += 1
            if ts >= live_from:
                plan.live.append(["G", keys.live_build(event["build_id"]), keys.live_done(event["build_id"]),
                                  keys.live_active(), keys.live_active(partner), event["build_id"],
                                  repr(ts), partner, f"stage:{stage}", status, int(ts + live_window_s)])
        elif kind == "build.started":
            for key in rollup_keys("b", ts, partner):
                incr[(key, f"st:{event['build_type']}")] += 1
            if ts >= live_from:
                plan.live.append(["S", keys.live_build(event["build_id"]), keys.live_done(event["build_id"]),
                                  keys.live_active(), keys.live_active(partner), event["build_id"],
                                  repr(ts), partner, event["build_type"], event["app_version"],
                                  int(ts + live_window_s)])
        elif kind == "asset.processed":
            dims = f"{event['asset_type']}:{event['format']}:{event['density']}"
            for key in rollup_keys("a", ts, partner):
                incr[(key, f"n:{dims}")] += 1
                incr[(key, f"ob:{dims}")] += event["original_bytes"]
                incr[(key, f"wb:{dims}")] += event["output_bytes"]
                incrf[(key, f"q:{dims}")] += event["quality_score"]
                incrf[(key, f"ds:{dims}")] += event["duration_s"]
        elif kind == "partner.upserted":
            record = {"partner_id": partner, "name": event["name"], "tier": event["tier"],
                      "monthly_build_quota": event["monthly_build_quota"], "status": event["status"],
                      "ts": ts}
            plan.live.append(["P", keys.partners(), keys.partner_history(partner), partner, repr(ts),
                              orjson.dumps(record).decode()])
    return plan
