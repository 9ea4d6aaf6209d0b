"""The only place that builds Redis key names (schema: docs/storage.md).

Every key carries the hash tag ``{<prefix>}`` so that, on a Redis/Valkey cluster, the ingest script
and multi-key reads stay in one slot.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timezone

__all__ = ["Keys", "Resolution", "RESOLUTIONS", "ROLLUP_KINDS", "day_of"]


@dataclass(frozen=True)
class Resolution:
    """A rollup resolution: bucket width and how long its buckets are kept."""

    name: str
    step_s: int
    keep_s: int

    def bucket(self, ts: float) -> int:
        """Start (epoch seconds) of the bucket holding `ts`."""
        return int(ts // self.step_s) * self.step_s


RESOLUTIONS: tuple[Resolution, ...] = (
    Resolution("m", 60, 2 * 86400),
    Resolution("h", 3600, 35 * 86400),
    Resolution("d", 86400, 730 * 86400),
)

# Rollup kinds: b = finished builds (counts, sums, per-partner counts, failures), bh = build
# duration histogram, s = stage counts/sums, sh = stage duration histograms, a = assets,
# th = build duration histograms per build type, e = failure signatures, ah = asset processing-time
# histograms per asset type (fields: store/fields.py).
ROLLUP_KINDS = ("b", "bh", "s", "sh", "a", "th", "e", "ah")

ALL_SCOPE = "*"


def day_of(ts: float) -> str:
    """UTC day of `ts` as YYYYMMDD (the raw-event partition)."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y%m%d")


class Keys:
    """Key-name factory for one deployment prefix."""

    ALL = ALL_SCOPE

    def __init__(self, prefix: str = "lp"):
        self.tag = "{" + prefix + "}"

    SEEN_SHARDS = 64

    def seen(self, day: str, shard: int) -> str:
        """Set of idempotency markers (event ids) of one shard of a UTC day of event ts. 64 sets a
        day (shard = `seen_shard(id)`), so a batch checks (SMISMEMBER) and writes (SADD) them with
        a few multi-member calls."""
        return f"{self.tag}:seen:{day}:{shard}"

    @staticmethod
    def seen_shard(event_id: str) -> int:
        """Shard of an event id's marker: CRC-32 of the id, mod 64."""
        return zlib.crc32(event_id.encode()) & 63

    def raw(self, event_type: str, day: str) -> str:
        """List of raw events (JSON) of one type whose ts falls on UTC `day` (YYYYMMDD)."""
        return f"{self.tag}:raw:{event_type}:{day}"

    def raw_days(self) -> str:
        """Sorted set of raw partitions (member 'type|YYYYMMDD', score = day start)."""
        return f"{self.tag}:raw:index"

    def rollup(self, res: str, kind: str, bucket: int, scope: str) -> str:
        """Rollup hash for one resolution, kind, bucket start and scope (partner id or '*')."""
        return f"{self.tag}:ru:{res}:{kind}:{bucket}:{scope}"

    def rollup_generation(self, res: str, bucket: int) -> str:
        """The generation of one resolution's bucket: a token every ingest batch writing to any of
        the bucket's rollup lists (any kind, any scope) sets afresh, in the same atomic script; it
        expires with them. A reader's sums read under an unchanged generation are current."""
        return f"{self.tag}:rg:{res}:{bucket}"

    def live_build(self, build_id: str) -> str:
        """Hash with the live state of one running build."""
        return f"{self.tag}:live:b:{build_id}"

    def live_active(self, scope: str = ALL_SCOPE) -> str:
        """Sorted set of running build ids, score = ts of their last event; per partner or all."""
        return f"{self.tag}:live:active:{scope}"

    def live_done(self, build_id: str) -> str:
        """Marker that a build has finished (so a late build.started does not revive it)."""
        return f"{self.tag}:live:done:{build_id}"

    def partners(self) -> str:
        """Hash partner_id -> JSON of the partner's current record."""
        return f"{self.tag}:partners"

    def partner_history(self, partner_id: str) -> str:
        """Sorted set of a partner's record changes (score = event ts, member = JSON)."""
        return f"{self.tag}:partner:hist:{partner_id}"

    def meta(self, name: str) -> str:
        """Small bookkeeping values (e.g. the demo seed's progress)."""
        return f"{self.tag}:meta:{name}"

    def ingest_unannounced(self, digest: str) -> str:
        """Set by the ingest script when it writes a batch, deleted by the process that announces the
        batch's events (live channel, metrics); `digest` names the batch by its event ids."""
        return f"{self.tag}:ingest:unannounced:{digest}"

    def cache_prefix(self) -> str:
        """Prefix of the dashboards' short-lived query cache entries."""
        return f"{self.tag}:cache:"

    def system(self, res: str, bucket: int) -> str:
        """Hash of the collector's system samples in one bucket (sums, maxima, sample count)."""
        return f"{self.tag}:sys:{res}:{bucket}"

    def http(self, res: str, bucket: int) -> str:
        """Hash of HTTP request counts by status class and a latency histogram, one bucket."""
        return f"{self.tag}:http:{res}:{bucket}"

    def metrics_snapshot(self) -> str:
        """The collector's latest snapshot (JSON: system sample, active builds, partner gauges)."""
        return f"{self.tag}:metrics:snapshot"

    def metrics_partner_labels(self) -> str:
        """Set of partner ids that have their own metric label (the rest are 'other')."""
        return f"{self.tag}:metrics:partner-labels"

    def collector_lock(self) -> str:
        """The collector leader lock (value: the holder's id, with a TTL renewed by the holder)."""
        return f"{self.tag}:collector:lock"

    def realtime_channel(self) -> str:
        """Pub/sub channel of the real-time messages (every stream)."""
        return f"{self.tag}:rt"

    def users(self) -> str:
        """Hash user name -> JSON of the user (role, partners, argon2 password hash, session epoch)."""
        return f"{self.tag}:auth:users"

    def api_tokens(self) -> str:
        """Hash SHA-256 (hex) of a personal API token -> JSON {user, created_at}; the token itself is
        never stored."""
        return f"{self.tag}:auth:tokens"

    def user_tokens(self, name: str) -> str:
        """Set of the token hashes of one user (so they can all be revoked)."""
        return f"{self.tag}:auth:user-tokens:{name}"

    def rate_limits(self) -> str:
        """Prefix of flask-limiter's counters (failed logins per user name and per client address)."""
        return f"{self.tag}:limits"

    def signature_patterns(self) -> str:
        """Hash signature id -> its pattern (the normalised message; services/analytics/signatures)."""
        return f"{self.tag}:sig:patterns"

    def signature_first_seen(self, scope: str = ALL_SCOPE) -> str:
        """Sorted set of signature ids, score = ts of the first failed build carrying it, per partner
        or all ('*'): first seen over the whole history, not one period."""
        return f"{self.tag}:sig:first:{scope}"

    def signature_last_seen(self, scope: str = ALL_SCOPE) -> str:
        """Sorted set of signature ids, score = ts of the latest failed build carrying it (per scope)."""
        return f"{self.tag}:sig:last:{scope}"

    def signature_examples(self, scope: str = ALL_SCOPE) -> str:
        """Hash signature id -> the first error message seen with it in this scope (a partner only
        ever sees its own partners' examples)."""
        return f"{self.tag}:sig:example:{scope}"

    def build_facts(self, day: str) -> str:
        """Hash of one UTC day's finished-build facts (services/queries/buildlog.py): `stamp` (JSON:
        version and the partition lengths they were built from), `facts` (vocabularies + numpy
        columns). Expires with the day's raw partitions."""
        return f"{self.tag}:facts:{day}"

    def forecast(self, digest: str) -> str:
        """A cached forecast (JSON) of one metric, step and partner set (digest of those, with the method's
        version); the longest horizon, cut to the one asked for on read."""
        return f"{self.tag}:forecast:{digest}"

    def forecast_jobs(self) -> str:
        """List of forecast jobs waiting for the forecaster (JSON: metric, step, horizon, partners)."""
        return f"{self.tag}:forecast:jobs"

    def alert_history(self, day: str) -> str:
        """Sorted set of one UTC day's alert state changes (score = ts of the change, member = JSON
        with a unique `change_id`); expires with the raw events' retention (services/alerting)."""
        return f"{self.tag}:alert:hist:{day}"

    def alert_states(self) -> str:
        """Hash alert id → JSON of the alert engine's state of that alert (pending, firing, and
        resolved ones for a day; services/alerting/store.py)."""
        return f"{self.tag}:alert:state"

    def alert_silences(self) -> str:
        """Hash silence id → JSON of the silence (matchers, starts_at, ends_at, author, comment);
        expired ones are dropped a retention window after they end."""
        return f"{self.tag}:alert:silences"

    def alert_evaluations(self) -> str:
        """Hash rule key (name|severity) → JSON of the rule's last evaluation (time, values, error)."""
        return f"{self.tag}:alert:evals"

    def alert_groups(self) -> str:
        """Hash receiver + group key → JSON of the notification group's bookkeeping (created,
        last notified, what was notified of each alert)."""
        return f"{self.tag}:alert:groups"

    def alert_delivery_queue(self) -> str:
        """Sorted set of queued alert notification ids, score = when each is due (while one is being
        delivered: the end of its lease, so a claim never finished is due again; services/alerting)."""
        return f"{self.tag}:alert:dlv:queue"

    def alert_delivery_items(self) -> str:
        """Hash notification id -> JSON of a queued alert notification (receiver, kind, url, body …)."""
        return f"{self.tag}:alert:dlv:items"

    def alert_delivery_state(self) -> str:
        """Hash of the queued notifications' delivery state: `a:<id>` claims so far, `l:<id>` the token
        of the current claim's lease, `r:<id>` JSON of the last attempt's result."""
        return f"{self.tag}:alert:dlv:state"

    def alert_delivery_done(self) -> str:
        """Sorted set of finished notification ids (delivered, rejected or expired), score = when;
        members older than the queue's max age are trimmed, so a re-enqueue never sends twice."""
        return f"{self.tag}:alert:dlv:done"

    def alert_delivery_totals(self) -> str:
        """Hash outcome (delivered, rejected, expired, retried) -> count of notifications / attempts."""
        return f"{self.tag}:alert:dlv:totals"

    def alert_delivery_attempts(self, day: str) -> str:
        """Sorted set of one UTC day's notification delivery attempts (score = the attempt's ts,
        member = JSON with a unique `attempt_id`); expires with the retention."""
        return f"{self.tag}:alert:dlv:attempts:{day}"

    def script_anchor(self) -> str:
        """The key passed to the ingest script so a cluster routes it to the right slot."""
        return f"{self.tag}:ingest"
