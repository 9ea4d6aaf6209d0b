"""Turns validated events into one write plan: idempotency markers, raw-event partitions,
pre-aggregated rollup deltas and live-state operations (applied by `services.store`).

Rollup buckets are append-only lists of JSON "delta" documents ({field: increment}); a batch adds
at most one delta to each bucket it touches, and long lists are compacted (merged into one) — so a
1,000-event batch costs a few hundred list pushes instead of thousands of hash increments.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import os
import zlib
from collections import defaultdict
from dataclasses import dataclass, field

import orjson

from services import sketch
from services.analytics.signatures import signature
from services.ingest.events import EVENT_TYPES
from services.store import fields as rf
from services.store.keys import ALL_SCOPE, RESOLUTIONS, Keys, day_of

__all__ = ["WritePlan", "plan_writes", "merge_deltas", "unique_token", "COMPACT_AT", "TOKEN_FIELD"]

_MARGIN_S = 120  # keys outlive their nominal keep time a little so a query at the edge finds them
EXAMPLE_CHARS = 500  # a signature's example message is kept this long (the script header carries it)
COMPACT_AT = 8  # a rollup list this long is merged into one delta after the write
# how long a written batch stays claimable for its announcement (a client's retries come sooner)
ANNOUNCE_TTL_S = 3600
TOKEN_FIELD = "_t"
DELTA_SEPARATOR = b"\x1e"  # ASCII record separator; never inside JSON text (control chars are escaped)  # unique per delta, so a compaction can check the list is still what it read
_RES = [(r.name, r.step_s, r.keep_s) for r in RESOLUTIONS]


@dataclass
class WritePlan:
    """Everything one batch writes; `script_args()` is what the ingest script receives.

    Raw events go to their partition as one chunk per batch (one list element: a JSON array of the
    batch's events), so a batch costs one push per partition however many events it holds."""

    seen: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    seen_exat: dict[str, int] = field(default_factory=dict)
    push: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    push_exat: dict[str, int] = field(default_factory=dict)
    rollups: dict[str, dict[str, float]] = field(default_factory=dict)
    rollup_exat: dict[str, int] = field(default_factory=dict)
    # generation key of every (resolution, bucket) written -> expire-at (docs/storage.md, "Reads")
    generations: dict[str, int] = field(default_factory=dict)
    written_at: float = 0.0  # the batch's acceptance time: `{lp}:meta:last_ingest_at` (alerting: no_events_minutes)
    index: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # raw key -> (zset, score, member)
    live: list[list] = field(default_factory=list)
    # (signature, scope) -> [first ts, last ts, first example]; signature -> pattern
    signatures: dict[tuple[str, str], list] = field(default_factory=dict)
    patterns: dict[str, str] = field(default_factory=dict)
    keys: Keys | None = field(default=None, repr=False)
    _args: list[bytes] | None = field(default=None, repr=False)
    _announce: str | None = field(default=None, repr=False)

    def seen_order(self) -> list[int]:
        """Event positions in the order the script checks their markers."""
        return [i for fields in self.seen.values() for i in fields.values()]

    def announce_key(self) -> str:
        """The key the ingest script sets when it writes this plan's events; the process that then
        announces them deletes it (`IngestService.commit`). Named by a digest of the events' ids, so
        a client's retry of the same batch names the same key."""
        if self._announce is None:
            ids = sorted(event_id for fields in self.seen.values() for event_id in fields)
            digest = hashlib.blake2b("\x1f".join(ids).encode(), digest_size=16).hexdigest()
            self._announce = self.keys.ingest_unannounced(digest)
        return self._announce

    def script_args(self) -> list[bytes]:
        """ARGV for the ingest script: a JSON header, then the raw events, then the rollup deltas
        (built once; `IngestService.prepare` builds them off the writing thread)."""
        if self._args is None:
            self._args = self._build_args()
        return self._args

    def _build_args(self) -> list[bytes]:
        token = unique_token()
        header = orjson.dumps({
            "seen": [[k, list(ids), self.seen_exat[k]] for k, ids in self.seen.items()],
            "push": [[k, self.push_exat[k]] for k in self.push],
            "rollup": [[k, self.rollup_exat[k]] for k in self.rollups],
            "gen": [[k, exat] for k, exat in self.generations.items()],
            "token": token,
            "last": [self.keys.meta("last_ingest_at"), repr(self.written_at)],
            "replays": self.keys.meta("ingest_replays"),
            "announce": [self.announce_key(), ANNOUNCE_TTL_S],
            "zadd": [list(self.index[k]) for k in self.push],
            "live": self.live,
            "sig": self._signature_ops(),
            "pat": [[self.keys.signature_patterns(), sig, pattern] for sig, pattern in self.patterns.items()]
            if self.patterns else [],
            "compact_at": COMPACT_AT,
        })
        args = [header]
        # One list element per batch and partition: a JSON array of the batch's events.
        args.extend(orjson.dumps(events) for events in self.push.values())
        # All rollup deltas travel as one argument (record separator between them): thousands of
        # separate arguments cost more to pack in redis-py than the script spends splitting them.
        deltas_out = []
        for i, deltas in enumerate(self.rollups.values()):
            deltas[TOKEN_FIELD] = f"{token}{i}"
            deltas_out.append(orjson.dumps(deltas))
        args.append(DELTA_SEPARATOR.join(deltas_out))
        return args


    def _signature_ops(self) -> list[list]:
        keys = self.keys
        return [[keys.signature_first_seen(scope), keys.signature_last_seen(scope), keys.signature_examples(scope),
                 sig, repr(first), repr(last), example]
                for (sig, scope), (first, last, example) in self.signatures.items()]


_TOKEN_PREFIX = os.urandom(6).hex()
_token_counter = itertools.count()


def unique_token() -> str:
    """A token unique across processes and calls (random per process, then a counter)."""
    return f"{_TOKEN_PREFIX}{next(_token_counter):x}."


def merge_deltas(target: dict, deltas: dict) -> dict:
    """Add a delta document into `target` (ignoring the token)."""
    get = target.get
    for f, v in deltas.items():
        if f != TOKEN_FIELD:
            target[f] = get(f, 0) + v
    return target


def _level(ts: float, now: float) -> int:
    """Index of the finest resolution still kept for `ts`."""
    for i, (_, step, keep) in enumerate(_RES):
        if ts // step * step + step + keep > now:
            return i
    return len(_RES)


def plan_writes(events: list[dict], *, keys: Keys, now: float, retention_s: int, live_window_s: int) -> WritePlan:
    """Plan the writes of `events` (validated, normalised, none already stored)."""
    plan = WritePlan(keys=keys, written_at=now)
    live_from = now - live_window_s
    # slots[(level, finest bucket, partner)][kind] = {field: increment}; kinds "b*" and "e*" hold
    # fields that only the all-partner scope keeps.
    slots: dict[tuple, dict[str, dict]] = {}
    minutes: dict[float, _Minute] = {}
    days: dict[int, _Day] = {}
    seen, push, crc32, bucket_of = plan.seen, plan.push, zlib.crc32, sketch.bucket_of
    log, ceil, inv_log_gamma, min_value, zero = math.log, math.ceil, sketch.INV_LOG_GAMMA, sketch.MIN_VALUE, sketch.ZERO_BUCKET

    for position, event in enumerate(events):
        ts = event["ts"]
        kind = event["type"]
        partner = event["partner_id"]
        ctx = minutes.get(ts // 60)
        if ctx is None:
            day_start = int(ts // 86400) * 86400
            day_ctx = days.get(day_start)
            if day_ctx is None:
                day_ctx = days[day_start] = _Day(day_start, keys, retention_s, plan)
            ctx = minutes[ts // 60] = _Minute(ts, now, day_ctx)
        event_id = event["id"]
        seen[ctx.seen_keys[crc32(event_id.encode()) & 63]][event_id] = position
        push[ctx.raw_keys[kind]].append(event)
        slot = slots.get((ctx.slot, partner))
        if slot is None:
            slot = slots[(ctx.slot, partner)] = defaultdict(lambda: defaultdict(int))

        if kind == "build.finished":
            status, build_type = event["status"], event["build_type"]
            b = slot["b"]
            b[rf.finished(status, build_type)] += 1
            if status != "cancelled":
                b[rf.finished_seconds(status, build_type)] += event["duration_s"]
                index = bucket_of(event["duration_s"])
                slot["bh"][str(index)] += 1
                slot["th"][rf.type_bucket(build_type, index)] += 1
            if status == "failed":
                stage = event.get("failed_stage") or "unknown"
                category = event.get("error_category") or "unknown"
                b[rf.failed_stage(stage)] += 1
                b[rf.error_category(category)] += 1
                message = event.get("error_message")
                if message:
                    _add_signature(plan, slot, message, stage, category, partner, ts)
            slot["b*"][rf.partner_finished(partner, status)] += 1
            if ts >= live_from:
                plan.live.append(["F", *_live_keys(keys, event["build_id"], partner), int(ts + live_window_s)])
        elif kind == "build.stage":
            stage, status = event["stage"], event["status"]
            s = slot["s"]
            s[rf.stage_count(stage, status)] += 1
            if status != "skipped":
                s[rf.stage_seconds(stage)] += event["duration_s"]
                duration = event["duration_s"]  # sketch.bucket_of, inlined: the hottest line of a batch
                slot["sh"][rf.stage_bucket(stage, ceil(log(duration) * inv_log_gamma) if duration >= min_value
                                               else zero)] += 1
            if ts >= live_from:
                plan.live.append(["G", *_live_keys(keys, event["build_id"], partner), repr(ts), partner,
                                  f"stage:{stage}", status, int(ts + live_window_s)])
        elif kind == "build.started":
            slot["b"][rf.started(event["build_type"])] += 1
            if ts >= live_from:
                plan.live.append(["S", *_live_keys(keys, event["build_id"], partner), repr(ts), partner,
                                  event["build_type"], event["app_version"], int(ts + live_window_s)])
        elif kind == "asset.processed":
            dims = rf.asset_dims(event["asset_type"], event["format"], event["density"])
            a = slot["a"]
            a[rf.asset("n", dims)] += 1
            a[rf.asset("ob", dims)] += event["original_bytes"]
            a[rf.asset("wb", dims)] += event["output_bytes"]
            a[rf.asset("q", dims)] += event["quality_score"]
            a[rf.asset("ds", dims)] += event["duration_s"]
            slot["ah"][rf.asset_bucket(event["asset_type"], bucket_of(event["duration_s"]))] += 1
        elif kind == "partner.upserted":
            record = {"partner_id": partner, "name": event["name"], "tier": event["tier"],
                      "monthly_build_quota": event["monthly_build_quota"], "status": event["status"],
                      "ts": ts}
            plan.live.append(["P", keys.partners(), keys.partner_history(partner), partner, repr(ts),
                              orjson.dumps(record).decode()])

    _expand(slots, plan, keys)
    return plan


def _add_signature(plan: WritePlan, slot: dict, message: str, stage: str, category: str, partner: str,
                   ts: float) -> None:
    """A failed build's signature: its rollup counts and its first/last seen (per partner and all)."""
    sig, pattern = signature(message)
    e = slot["e"]
    e[rf.signature_count(sig)] += 1
    e[rf.signature_stage(sig, stage)] += 1
    e[rf.signature_category(sig, category)] += 1
    slot["e*"][rf.signature_partner(sig, partner)] += 1
    plan.patterns.setdefault(sig, pattern)
    example = message[:EXAMPLE_CHARS]
    for scope in (partner, ALL_SCOPE):
        seen = plan.signatures.get((sig, scope))
        if seen is None:
            plan.signatures[(sig, scope)] = [ts, ts, example]
        else:
            if ts < seen[0]:
                seen[0], seen[2] = ts, example
            if ts > seen[1]:
                seen[1] = ts


def _live_keys(keys: Keys, build_id: str, partner: str) -> list[str]:
    """The head every live-state operation of the ingest script starts with."""
    return [keys.live_build(build_id), keys.live_done(build_id), keys.live_active(), keys.live_active(partner), build_id]


class _Minute:
    """What every event of one minute shares: its finest kept rollup bucket, and its day's marker
    sets and raw partitions (registered in the plan once per day)."""

    __slots__ = ("slot", "seen_keys", "raw_keys")

    def __init__(self, ts: float, now: float, day_ctx: "_Day"):
        level = _level(ts, now)
        self.slot = (level, int(ts // _RES[level][1]) * _RES[level][1] if level < len(_RES) else 0)
        self.seen_keys = day_ctx.seen_keys
        self.raw_keys = day_ctx.raw_keys


class _Day:
    """A UTC day's marker sets and raw partitions."""

    __slots__ = ("seen_keys", "raw_keys")

    def __init__(self, day_start: int, keys: Keys, retention_s: int, plan: WritePlan):
        day = day_of(day_start)
        expire_at = day_start + 86400 + retention_s
        self.seen_keys = [keys.seen(day, shard) for shard in range(Keys.SEEN_SHARDS)]
        for key in self.seen_keys:
            plan.seen_exat[key] = expire_at
        self.raw_keys = {}
        for kind in EVENT_TYPES:
            self.raw_keys[kind] = key = keys.raw(kind, day)
            plan.push_exat[key] = expire_at
            plan.index[key] = (keys.raw_days(), day_start, f"{kind}|{day}")


def _expand(slots: dict[tuple, dict[str, dict]], plan: WritePlan, keys: Keys) -> None:
    """Fold the per-partner deltas up the resolutions: each level's deltas become that level's
    rollups (per partner and summed for all partners) and are folded into the next level's."""
    by_level: list[dict[tuple, dict]] = [{} for _ in _RES]
    for ((level, bucket), partner), kinds in slots.items():
        if level < len(_RES):
            for kind, fields in kinds.items():
                by_level[level][(kind, bucket, partner)] = fields
    for level, (name, step, keep) in enumerate(_RES):
        entries = by_level[level]
        star: dict[tuple[str, int], dict] = {}
        upper = by_level[level + 1] if level + 1 < len(_RES) else None
        upper_step = _RES[level + 1][1] if upper is not None else 0
        for bucket in {bucket for _, bucket, _ in entries}:
            plan.generations[keys.rollup_generation(name, bucket)] = bucket + step + keep + _MARGIN_S
        for (kind, bucket, partner), fields in entries.items():
            exat = bucket + step + keep + _MARGIN_S
            if kind.endswith("*"):  # fields only the all-partner scope keeps
                target_kind = kind[:-1]
            else:
                key = keys.rollup(name, kind, bucket, partner)
                plan.rollups[key] = fields
                plan.rollup_exat[key] = exat
                target_kind = kind
            total = star.get((target_kind, bucket))
            if total is None:
                star[(target_kind, bucket)] = dict(fields)
                plan.rollup_exat[keys.rollup(name, target_kind, bucket, ALL_SCOPE)] = exat
            else:
                merge_deltas(total, fields)
            if upper is not None:
                up_key = (kind, bucket // upper_step * upper_step, partner)
                existing = upper.get(up_key)
                if existing is None:
                    upper[up_key] = dict(fields)
                else:
                    merge_deltas(existing, fields)
        for (target_kind, bucket), fields in star.items():
            plan.rollups[keys.rollup(name, target_kind, bucket, ALL_SCOPE)] = fields
