"""Read side: summary and series from the rollups, live state, partners (definitions: README.md, "Read API").

Every public read takes a `Scope` (services/scope.py): the partners it covers (None = every
partner, only for a principal that sees them all; empty = nothing) and the range. There is no
default: a read without a scope raises TypeError.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from datetime import datetime, timezone

import orjson

from services import sketch
from services.store.keys import ALL_SCOPE, RESOLUTIONS, Keys, Resolution
from services.ingest.plan import TOKEN_FIELD, merge_deltas, unique_token
from services.store import Store, StoreUnavailable
from services.store import fields as rf
from services.store.cache import BucketCache
from services.scope import Scope, system_scope
from services.vocabulary import TIER_RANK
from services.timerange import Cover, cover_range, resolution_for_step

__all__ = ["QueryService", "SERIES_METRICS", "Totals", "AUTO_STEPS", "sum_deltas", "delta_suffix", "TooMuchWork"]

log = logging.getLogger(__name__)

SERIES_METRICS = (
    "builds", "builds_succeeded", "builds_failed", "builds_cancelled", "builds_started", "success_rate",
    "duration_avg", "duration_p50", "duration_p95", "duration_p99", "assets", "compression_ratio",
    "quality_avg", "active_partners",
)
AUTO_STEPS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
MAX_POINTS = 1500
# Rollup lists one read may cover (buckets × kinds × partners), checked before any work: a series
# step that is no multiple of the kept resolutions, or two years of 100 partners, would otherwise
# read millions of lists.
MAX_ROLLUP_READS = 200_000


class TooMuchWork(ValueError):
    """A read whose cost is over the bound (the message says which parameter to change)."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def _partners(scope: Scope) -> list[str] | None:
    """The partner ids of a scope (None = every partner); refuses anything that is not a Scope."""
    if not isinstance(scope, Scope):
        raise TypeError(f"a read needs a Scope (services/scope.py), not {type(scope).__name__}")
    return scope.partner_list()


class Totals:
    """Sums of rollup hashes of one kind-set, with the derived figures of the read API."""

    def __init__(self):
        self.b: dict[str, float] = defaultdict(int)
        self.bh: dict[int, int] = defaultdict(int)
        self.a: dict[str, float] = defaultdict(int)
        self.s: dict[str, float] = defaultdict(int)
        self.sh: dict[str, int] = defaultdict(int)
        self.th: dict[str, int] = defaultdict(int)
        self.e: dict[str, int] = defaultdict(int)
        self.ah: dict[str, int] = defaultdict(int)

    def add(self, kind: str, scope: str, deltas: list[bytes]) -> None:
        """Add one rollup bucket (its list of delta documents)."""
        self.add_sum(kind, scope, sum_deltas(kind, deltas))

    def add_sum(self, kind: str, scope: str, fields: dict) -> None:
        """Add one rollup bucket given as the sum of its deltas (`fields` is not modified)."""
        if not fields:
            return
        target = getattr(self, kind)
        if target:
            get = target.get
            for f, v in fields.items():
                target[f] = get(f, 0) + v
        else:
            target.update(fields)
        if kind == "b" and scope != ALL_SCOPE:
            # the all-partner scope keeps per-partner counts itself; a partner's own bucket adds them
            b = self.b
            for f, v in fields.items():
                if f.startswith(rf.FINISHED):
                    key = rf.partner_finished(scope, rf.status_of(f))
                    b[key] = b.get(key, 0) + v
        elif kind == "e" and scope != ALL_SCOPE:  # the all-partner scope holds these itself
            e = self.e
            for f, v in fields.items():
                if f.startswith(rf.SIGNATURE_COUNT):
                    key = rf.signature_partner(f[len(rf.SIGNATURE_COUNT):], scope)
                    e[key] = e.get(key, 0) + v

    def count(self, kind: str, prefix: str) -> int | float:
        """Sum of the fields of `kind` starting with `prefix`."""
        return sum(v for f, v in getattr(self, kind).items() if f.startswith(prefix))

    def summary(self) -> dict:
        """The summary figures (without the live ones)."""
        succeeded = self.count("b", rf.finished("success"))
        failed = self.count("b", rf.finished("failed"))
        cancelled = self.count("b", rf.finished("cancelled"))
        completed = succeeded + failed
        duration_sum = self.count("b", rf.FINISHED_SECONDS)
        p50, p95, p99 = sketch.quantiles(self.bh, (0.5, 0.95, 0.99))
        original = self.count("a", rf.asset("ob", ""))
        output = self.count("a", rf.asset("wb", ""))
        assets = self.count("a", rf.asset("n", ""))
        partners = {rf.partner_of(f) for f, v in self.b.items() if f.startswith(rf.PARTNER_FINISHED) and v > 0}
        return {
            "builds_total": int(succeeded + failed + cancelled),
            "builds_succeeded": int(succeeded),
            "builds_failed": int(failed),
            "builds_cancelled": int(cancelled),
            "builds_started": int(self.count("b", rf.STARTED)),
            "success_rate": (succeeded / completed) if completed else None,
            "duration_avg_s": (duration_sum / completed) if completed else None,
            "duration_p50_s": p50,
            "duration_p95_s": p95,
            "duration_p99_s": p99,
            "active_partners": len(partners),
            "assets_processed": int(assets),
            "asset_compression_ratio_avg": (1 - output / original) if original else None,
            "asset_quality_avg": (self.count("a", rf.asset("q", "")) / assets) if assets else None,
            "asset_bytes_saved": int(original - output),
        }


_TOKEN_MARK = b'"' + TOKEN_FIELD.encode() + b'":"'
EMPTY: Mapping = MappingProxyType({})  # the sum of an empty list (shared: read-only)


def sum_deltas(kind: str, deltas: list[bytes]) -> dict:
    """The sum of a rollup list's delta documents, without the token (`bh` fields as ints)."""
    loads = orjson.loads
    if len(deltas) == 1:
        doc = loads(deltas[0])
        doc.pop(TOKEN_FIELD, None)
    else:
        doc = {}
        for blob in deltas:
            merge_deltas(doc, loads(blob))
    if kind == "bh":
        return {int(f): v for f, v in doc.items()}
    return doc


def delta_suffix(delta: bytes) -> bytes:
    """The end of a delta document from its token field on (b'' if it has none). Tokens are unique
    per delta, so this names the delta: a list still ending with it still has the same sum."""
    i = delta.rfind(_TOKEN_MARK)
    return delta[i:] if i >= 0 else b""


class _GenerationMoved(Exception):
    """A bucket whose cached sums a read relied on changed before the read's lists were read."""


class QueryService:
    """Queries over the store. Writes only to reap stale live builds and to compact settled rollup
    lists it has just read (read repair, through the same compare-and-set script as ingest)."""

    SETTLED_S = 120  # a bucket that ended this long ago is read-repaired when it holds 2+ deltas
    GENERATION_TRIES = 3  # reads using cached sums under unchanged generations, before reading all lists

    def __init__(self, store: Store, *, live_window_s: int = 6 * 3600, clock: Callable[[], float] = time.time,
                 cache: BucketCache | None = None):
        self.store = store
        self.keys: Keys = store.keys
        self.live_window_s = live_window_s
        self.clock = clock
        self.cache = cache if cache is not None else BucketCache()
        self._groups: OrderedDict[tuple, tuple[tuple[dict, ...], dict]] = OrderedDict()
        self._groups_lock = threading.Lock()

    # -- rollups -----------------------------------------------------------------------------
    def _scopes(self, partners: Iterable[str] | None) -> list[str]:
        return [ALL_SCOPE] if partners is None else sorted(set(partners))

    def _fetch(self, buckets: Iterable[tuple[str, int]], kinds: Iterable[str], scopes: list[str]):
        """((res, bucket, kind, scope), sum of that rollup list) for every bucket × kind × scope."""
        kinds = tuple(kinds)
        keys, meta = [], []
        rollup = self.keys.rollup
        for res, bucket in buckets:
            for kind in kinds:
                for scope in scopes:
                    keys.append(rollup(res, kind, bucket, scope))
                    meta.append((res, bucket, kind, scope))
        return zip(meta, self._sums(keys, meta))

    def _sums(self, keys: list[str], meta: list[tuple]) -> list[dict]:
        """The sum of each rollup list: from the bucket cache for the buckets whose generation is
        the one it was read under, the others read (one round trip for the generations, one for
        the lists; see `_read`)."""
        for _ in range(self.GENERATION_TRIES):
            generations = self._generations({(res, bucket) for res, bucket, _, _ in meta})
            out: list = [entry[1] if entry is not None and entry[2] is not None
                         and entry[2] == generations.get((m[0], m[1])) else None
                         for entry, m in zip(self.cache.get_many(keys), meta)]
            todo = [i for i, fields in enumerate(out) if fields is None]
            if not todo:  # all current at the moment the generations were read (one MGET)
                return out
            served = {(m[0], m[1]) for m, fields in zip(meta, out) if fields is not None}
            try:
                read = self._read([(keys[i], meta[i][2], meta[i][1] + _STEP[meta[i][0]], None) for i in todo],
                                  generations=[generations.get((meta[i][0], meta[i][1])) for i in todo],
                                  verify={b: generations[b] for b in served})
            except _GenerationMoved:
                continue  # a batch landed between the two reads: read again for one snapshot
            for i, (fields, _) in zip(todo, read):
                out[i] = fields
            return out
        return [fields for fields, _ in self._read([(key, kind, bucket + _STEP[res], None)
                                                     for key, (res, bucket, kind, _) in zip(keys, meta)])]

    def _generations(self, buckets) -> dict[tuple[str, int], bytes]:
        """(resolution, bucket) → the bucket's current generation (docs/storage.md, "Reads"), for
        the buckets that have one (absent: written before generations, or expired)."""
        buckets = list(buckets)
        if not buckets:
            return {}
        generation = self.keys.rollup_generation
        values = self.store.run(lambda c: c.mget([generation(res, bucket) for res, bucket in buckets]))
        return {b: v for b, v in zip(buckets, values) if v is not None}

    def _read(self, items: list[tuple[str, str, int, bytes | None]], groups: list[int] | None = None,
              generations: list[bytes | None] | None = None,
              verify: dict[tuple[str, int], bytes] | None = None) -> list[tuple[dict | None, bytes]]:
        """(sum, suffix of its last delta) of each (key, kind, bucket end, probe) item, read in one
        round trip (`groups`: runs read atomically, see Store.read_lists; default all at once).

        The sum comes from the bucket cache when the store confirms the list still ends with the
        cached delta, else the list is read, parsed and cached. A `probe` suffix is checked instead of
        the cached one: when the list still ends with it the item answers (None, probe). Lists of 2+
        deltas whose bucket ended over SETTLED_S ago are compacted (read repair). `generations`: of
        each item's bucket, read before this call — kept with what is cached (and with entries the
        store confirmed), so the next read of an unchanged bucket needs no list check. `verify`:
        buckets whose sums the caller took from the cache under these generations — read again with
        the lists (in the last atomic call); raises _GenerationMoved (after caching what was read)
        when one changed, as the caller's sums and these would not be one snapshot."""
        generations = generations if generations is not None else [None] * len(items)
        cached = self.cache.get_many([item[0] for item in items])
        suffixes = [probe if probe is not None else (entry[0] if entry else b"")
                    for (_, _, _, probe), entry in zip(items, cached)]
        verify_keys = [self.keys.rollup_generation(res, bucket) for res, bucket in verify] if verify else None
        replies = self.store.read_lists([item[0] for item in items], suffixes, groups, verify_keys)
        moved = False
        if verify_keys:
            moved = any(now != verify[b] for b, now in zip(verify, replies.pop()))
        settled_before = self.clock() - self.SETTLED_S
        out: list[tuple[dict | None, bytes]] = []
        repair = []
        confirmed: tuple[list[str], list[bytes | None]] = ([], [])
        put = self.cache.put
        for (key, kind, bucket_end, probe), entry, suffix, reply, generation in zip(
                items, cached, suffixes, replies, generations):
            if not isinstance(reply, list):  # 0: the list still ends with `suffix`
                if probe is not None:
                    out.append((None, probe))
                else:
                    out.append((entry[1], suffix))
                    if generation is not None:
                        confirmed[0].append(key)
                        confirmed[1].append(generation)
                continue
            if not reply:
                out.append((EMPTY, b""))
                if generation is not None:  # no list in a bucket with a generation: none until it changes
                    put(key, b"", EMPTY, generation=generation)
                continue
            fields = sum_deltas(kind, reply)
            last = delta_suffix(reply[-1])
            put(key, last, fields, generation=generation)
            out.append((fields, last))
            if len(reply) > 1 and bucket_end < settled_before:
                repair.append((key, reply, fields, generation))
        if confirmed[0]:
            self.cache.set_generations(*confirmed)
        if repair:
            self._read_repair(repair)
        if moved:
            raise _GenerationMoved()
        return out

    def _read_repair(self, lists: list[tuple[str, list[bytes], dict, bytes | None]]) -> None:
        """Compact lists just read into one delta each (the compare-and-set leaves a list alone if it
        changed meanwhile), and keep the merged delta's suffix for those compacted (a compaction
        keeps the sum: the bucket's generation stays what it was)."""
        ops, sums, generations = [], [], []
        for key, deltas, fields, generation in lists:
            generations.append(generation)
            merged = dict(fields)
            merged[TOKEN_FIELD] = unique_token()
            ops.append((key, deltas, orjson.dumps(merged, option=orjson.OPT_NON_STR_KEYS)))
            sums.append(fields)
        try:
            flags = self.store.compact_read(ops)
        except StoreUnavailable as exc:  # the read already succeeded; compaction can wait
            log.debug("read repair skipped: %s", exc)
            return
        for (key, _, blob), fields, flag, generation in zip(ops, sums, flags, generations):
            if flag:
                self.cache.put(key, delta_suffix(blob), fields, generation=generation)

    def totals(self, cover: Cover, scope: Scope, kinds: Iterable[str] = ("b", "bh", "a")) -> Totals:
        """Sum the rollups of `kinds` over a cover, for the scope's partners. Raises TooMuchWork
        (naming `partner`) before reading when that is more than MAX_ROLLUP_READS lists."""
        partners = _partners(scope)
        kinds = tuple(kinds)
        if len(cover.buckets) * len(kinds) * len(self._scopes(partners)) > MAX_ROLLUP_READS:
            raise TooMuchWork("partner: this range over this many partners would read too many rollups; choose "
                              "fewer partners or a shorter range", "partner")
        groups: dict[tuple[str, str, str], tuple[list[str], list[dict]]] = {}
        rollup = self.keys.rollup
        for (res, bucket, kind, scope), fields in self._fetch(cover.buckets, kinds, self._scopes(partners)):
            keys, sums = groups.setdefault((kind, scope, res), ([], []))
            keys.append(rollup(res, kind, bucket, scope))
            sums.append(fields)
        totals = Totals()
        for (kind, scope, _), (keys, sums) in groups.items():
            totals.add_sum(kind, scope, self._group_sum(keys, sums))
        return totals

    def totals_many(self, covers: list[Cover], scope: Scope, kinds: Iterable[str] = ("b",)) -> list[Totals]:
        """`totals` of each cover (one round trip for all of them: a trend's windows)."""
        partners = _partners(scope)
        kinds = tuple(kinds)
        scopes = self._scopes(partners)
        if sum(len(c.buckets) for c in covers) * len(kinds) * len(scopes) > MAX_ROLLUP_READS:
            raise TooMuchWork("partner: this range over this many partners would read too many rollups; choose "
                              "fewer partners or a shorter range", "partner")
        buckets = list(dict.fromkeys(b for c in covers for b in c.buckets))  # each bucket read once
        sums = {(res, bucket, kind, sc): fields for (res, bucket, kind, sc), fields in self._fetch(buckets, kinds, scopes)}
        out = []
        for cover in covers:
            totals = Totals()
            for kind in kinds:
                for sc in scopes:
                    totals.add_sum(kind, sc, _add_all([sums[(res, bucket, kind, sc)] for res, bucket in cover.buckets]))
            out.append(totals)
        return out

    def totals_by_partner(self, cover: Cover, partners: list[str], kinds: Iterable[str] = ("b",)) -> dict[str, Totals]:
        """`totals` of each partner on its own (one round trip for all of them)."""
        kinds = tuple(kinds)
        partners = sorted(set(partners))
        if len(cover.buckets) * len(kinds) * len(partners) > MAX_ROLLUP_READS:
            raise TooMuchWork("partner: this range over this many partners would read too many rollups; choose "
                              "fewer partners or a shorter range", "partner")
        groups: dict[tuple[str, str, str], tuple[list[str], list[dict]]] = {}
        rollup = self.keys.rollup
        for (res, bucket, kind, scope), fields in self._fetch(cover.buckets, kinds, partners):
            keys, sums = groups.setdefault((kind, scope, res), ([], []))
            keys.append(rollup(res, kind, bucket, scope))
            sums.append(fields)
        out = {pid: Totals() for pid in partners}
        for (kind, scope, _), (keys, sums) in groups.items():
            out[scope].add_sum(kind, scope, self._group_sum(keys, sums))
        return out

    GROUP_MIN = 4  # groups of fewer buckets are summed each time
    GROUP_CACHE = 256

    def _group_sum(self, keys: list[str], sums: list[dict]) -> dict:
        """Σ of the bucket sums of one kind, scope and resolution. The result is kept per key list and
        reused while every bucket sum is the identical object (the bucket cache hands out the same
        object only while the store confirms that list unchanged), so a 90-day range re-adds
        nothing but the buckets that changed: none for the whole days of the past."""
        if len(sums) < self.GROUP_MIN:
            return _add_all(sums)
        group_key = tuple(keys)
        with self._groups_lock:
            hit = self._groups.get(group_key)
            if hit is not None:
                self._groups.move_to_end(group_key)
        if hit is not None and len(hit[0]) == len(sums) and all(a is b for a, b in zip(hit[0], sums)):
            return hit[1]
        total = _add_all(sums)
        with self._groups_lock:
            self._groups[group_key] = (tuple(sums), total)
            self._groups.move_to_end(group_key)
            while len(self._groups) > self.GROUP_CACHE:
                self._groups.popitem(last=False)
        return total

    def summary(self, scope: Scope) -> dict:
        """GET /api/v1/summary: the figures of the API contract for the scope's [start, end)."""
        now = self.clock()
        partners = _partners(scope)
        cover = cover_range(scope.start, scope.end, now)
        out = {"from": cover.start, "to": cover.end, "partners": partners}
        out.update(self.totals(cover, scope).summary())
        out["active_builds"] = self.active_builds(scope)
        return out

    def windows(self, scope: Scope, step_s: int | None, kinds: Iterable[str]) -> tuple[int, list[tuple[int, Totals]]]:
        """Totals per step over the scope's [start, end) (step widened to what is kept at `start`;
        None = auto). Raises TooMuchWork (naming `step`) before reading when the series is too big."""
        partners = _partners(scope)
        start, end = scope.start, scope.end
        now = self.clock()
        span = max(end - start, 60)
        if step_s is None:
            step_s = next((s for s in AUTO_STEPS if span / s <= 300), AUTO_STEPS[-1])
        res = resolution_for_step_or_coarser(step_s, start, now)
        step_s = max(step_s, res.step_s)
        step_s -= step_s % res.step_s
        first = int(start // step_s) * step_s if step_s <= 86400 else int(start // res.step_s) * res.step_s
        if (end - first) / step_s > MAX_POINTS:
            raise TooMuchWork(f"step: more than {MAX_POINTS} points for this range; choose a larger step", "step")
        windows: dict[int, Totals] = {}
        t = first
        while t < end:
            windows[t] = Totals()
            t += step_s
        # The last window is read only up to the range's end (a step longer than the range must
        # not read the buckets of the whole step).
        hi = min(t, -(-int(end) // res.step_s) * res.step_s)
        scopes = self._scopes(partners)
        reads = (hi - first) // res.step_s * len(tuple(kinds)) * len(scopes)
        if reads > MAX_ROLLUP_READS:
            raise TooMuchWork("step: this range, step and partner set would read too many rollups; choose a step "
                              "that is a whole number of hours or days, or fewer partners", "step")
        for bucket, kind, scope, fields in self._fine_sums(res, first, hi, step_s, tuple(kinds), scopes):
            if fields:
                windows[first + (bucket - first) // step_s * step_s].add_sum(kind, scope, fields)
        return step_s, list(windows.items())

    def _fine_sums(self, res: Resolution, lo: int, hi: int, step_s: int, kinds: tuple[str, ...], scopes: list[str]):
        """(bucket, kind, scope, sum) of every `res` bucket in [lo, hi), for a series of `step_s`
        windows from `lo`. The buckets of a whole coarser bucket inside the range (the 60 minutes
        of an hour, the 24 hours of a day) are kept together as a block, valid while the coarser
        list still ends with the delta it ended with when the block was read: every batch that
        adds to a bucket adds to the coarser bucket holding it in the same atomic script, and
        compaction keeps sums. So a block costs one check instead of 60 (or 24) reads. A block and
        its coarser list are always read in one atomic call; for steps inside the block, the
        block also keeps its window sums. (A sum with the bucket `None` is a whole window's.)
        Buckets and blocks held under their bucket's current generation need no check at all; the
        read of the others re-reads those generations, and a change between the two starts over
        (after GENERATION_TRIES, everything is checked list by list)."""
        level = next(i for i, r in enumerate(RESOLUTIONS) if r.name == res.name)
        parent = RESOLUTIONS[level + 1] if level + 1 < len(RESOLUTIONS) else None
        rollup = self.keys.rollup
        loose: list[tuple[int, str, str]] = []  # (bucket, kind, scope) read one by one
        blocks: list[tuple[int, str, str]] = []  # (parent bucket, kind, scope)
        for kind in kinds:
            for scope in scopes:
                b = lo
                while b < hi:
                    if parent is not None and b % parent.step_s == 0 and b + parent.step_s <= hi:
                        blocks.append((b, kind, scope))
                        b += parent.step_s
                    else:
                        loose.append((b, kind, scope))
                        b += res.step_s
        for _ in range(self.GENERATION_TRIES):
            try:
                return self._fine_sums_read(res, parent, loose, blocks, step_s, True)
            except _GenerationMoved:
                continue  # a batch landed between the reads: again, for one snapshot
        return self._fine_sums_read(res, parent, loose, blocks, step_s, False)

    def _fine_sums_read(self, res: Resolution, parent: Resolution | None, loose: list, blocks: list, step_s: int,
                        use_generations: bool) -> list[tuple[int | None, str, str, dict]]:
        """`_fine_sums` of the loose buckets and blocks (see there)."""
        rollup = self.keys.rollup
        out: list[tuple[int | None, str, str, dict]] = []
        # Phase 0: the generations of every bucket read (loose ones, blocks' coarser ones): what is
        # held of a bucket whose generation is unchanged is current without a check.
        generations = self._generations({(res.name, b) for b, _, _ in loose}
                                        | ({(parent.name, p) for p, _, _ in blocks} if blocks else set())) \
            if use_generations else {}
        served: dict[tuple[str, int], bytes] = {}
        loose_keys = [rollup(res.name, k, b, sc) for b, k, sc in loose]
        pending = []
        for (b, k, sc), key, entry in zip(loose, loose_keys, self.cache.get_many(loose_keys)):
            generation = generations.get((res.name, b))
            if entry is not None and generation is not None and entry[2] == generation:
                out.append((b, k, sc, entry[1]))
                served[(res.name, b)] = generation
            else:
                pending.append(((b, k, sc), key, generation))
        # Phase 1: loose buckets and the checks of blocks held, in one call; blocks not held are
        # read whole, each with its coarser list, as their own atomic groups.
        held = self.cache.get_many([rollup(parent.name, k, p, sc) + ">" + res.name for p, k, sc in blocks]) \
            if blocks else []
        items = [(key, block[1], block[0] + res.step_s, None) for block, key, _ in pending]
        item_generations = [generation for _, _, generation in pending]
        probes = []
        missing = []
        for block, entry in zip(blocks, held):
            if entry is None:
                missing.append(block)
                continue
            p, k, sc = block
            generation = generations.get((parent.name, p))
            if generation is not None and entry[2] == generation:
                out.extend(self._block_sums(block, entry[1], res, step_s))
                served[(parent.name, p)] = generation
                continue
            items.append((rollup(parent.name, k, p, sc), k, p + parent.step_s, entry[0]))
            item_generations.append(None)
            probes.append((block, entry))
        size = 1 + parent.step_s // res.step_s if parent is not None else 0
        block_items, block_generations = self._block_items(res, parent, missing, generations)
        answers = self._read(items + block_items, [len(items)] + [size] * len(missing),
                             item_generations + block_generations, verify=served)
        for (block, _, _), (fields, _) in zip(pending, answers):
            out.append((*block, fields))
        stale = []
        for (block, entry), (fields, _) in zip(probes, answers[len(pending):len(items)]):
            if fields is None:  # the coarser list is unchanged: the block is current
                out.extend(self._block_sums(block, entry[1], res, step_s))
                generation = generations.get((parent.name, block[0]))
                if generation is not None:
                    self.cache.set_generations([rollup(parent.name, block[1], block[0], block[2]) + ">" + res.name],
                                               [generation])
            else:
                stale.append(block)
        blocks_read = self._store_blocks(res, parent, missing, answers[len(items):], generations)
        if stale:  # Phase 2: blocks whose coarser list changed since they were read
            stale_items, stale_generations = self._block_items(res, parent, stale, generations)
            again = self._read(stale_items, [size] * len(stale), stale_generations)
            blocks_read += self._store_blocks(res, parent, stale, again, generations)
        for block, value in blocks_read:
            out.extend(self._block_sums(block, value, res, step_s))
        return out

    def _block_items(self, res: Resolution, parent: Resolution, blocks: list[tuple[int, str, str]],
                     generations: dict) -> tuple[list, list]:
        """The items of whole-block reads (the coarser list, then its buckets) and their buckets'
        generations."""
        items, item_generations = [], []
        rollup = self.keys.rollup
        for p, k, sc in blocks:
            items.append((rollup(parent.name, k, p, sc), k, p + parent.step_s, None))
            item_generations.append(generations.get((parent.name, p)))
            for b in range(p, p + parent.step_s, res.step_s):
                items.append((rollup(res.name, k, b, sc), k, b + res.step_s, None))
                item_generations.append(None)  # not asked for: a child list is only read in its block
        return items, item_generations

    def _store_blocks(self, res: Resolution, parent: Resolution, blocks: list, answers: list,
                      generations: dict) -> list:
        """Blocks from atomic reads of [coarser list, its buckets...]; cached when the coarser list
        has a token (or its bucket a generation) to check them by."""
        if not blocks:
            return []
        n = 1 + parent.step_s // res.step_s
        out = []
        rollup = self.keys.rollup
        for i, (p, k, sc) in enumerate(blocks):
            group = answers[i * n:(i + 1) * n]
            children = tuple(fields for fields, _ in group[1:])
            value = {"children": children, "windows": {}}
            suffix = group[0][1]
            self.cache.put(rollup(parent.name, k, p, sc) + ">" + res.name, suffix, value,
                           size=1 + sum(len(c) for c in children), generation=generations.get((parent.name, p)))
            out.append(((p, k, sc), value))
        return out

    @staticmethod
    def _block_sums(block: tuple[int, str, str], value: dict, res: Resolution, step_s: int):
        """(bucket, kind, scope, sum) of a block: per window when `step_s` divides it (memoised in
        the block: its sums never change), else per bucket."""
        p, k, sc = block
        children = value["children"]
        per = step_s // res.step_s
        if step_s % res.step_s or len(children) % per or per == 1:
            return [(p + i * res.step_s, k, sc, fields) for i, fields in enumerate(children)]
        sums = value["windows"].get(step_s)
        if sums is None:
            sums = value["windows"][step_s] = tuple(_add_all(list(children[i:i + per]))
                                                     for i in range(0, len(children), per))
        return [(p + i * step_s, k, sc, fields) for i, fields in enumerate(sums)]

    def series(self, metric: str, scope: Scope, step_s: int | None = None) -> dict:
        """GET /api/v1/series/<metric>: one point per step, [ts, value] (value None when undefined)."""
        if metric not in SERIES_METRICS:
            raise KeyError(metric)
        step_s, windows = self.windows(scope, step_s, _kinds_for(metric))
        res = resolution_for_step_or_coarser(step_s, scope.start, self.clock())
        points = [[ts, _metric_value(metric, totals)] for ts, totals in windows]
        first = windows[0][0] if windows else int(scope.start)
        return {"metric": metric, "step_s": step_s, "resolution": res.name, "from": first,
                "to": first + step_s * len(windows), "points": points}

    # -- live state ----------------------------------------------------------------------------
    def active_builds(self, scope: Scope) -> int:
        """Builds started and not finished, with an event within the live window, now."""
        since = self.clock() - self.live_window_s
        scopes = self._scopes(_partners(scope))
        if not scopes:
            return 0

        def count(client):
            pipe = client.pipeline(transaction=False)
            for scope in scopes:
                pipe.zremrangebyscore(self.keys.live_active(scope), "-inf", f"({since}")
                pipe.zcard(self.keys.live_active(scope))
            return sum(pipe.execute()[1::2])

        return int(self.store.run(count))

    def running_builds(self, scope: Scope, limit: int = 500) -> list[dict]:
        """Running builds with their stages, most recently active first."""
        since = self.clock() - self.live_window_s
        scopes = self._scopes(_partners(scope))
        if not scopes:
            return []

        def fetch(client):
            ids = []
            for scope in scopes:
                ids += client.zrevrangebyscore(self.keys.live_active(scope), "+inf", since, start=0, num=limit)
            pipe = client.pipeline(transaction=False)
            for build_id in ids:
                pipe.hgetall(self.keys.live_build(build_id.decode()))
            return pipe.execute()

        builds = []
        for fields in self.store.run(fetch):
            if not fields:
                continue
            record = {k.decode(): v.decode() for k, v in fields.items()}
            stages = {k[6:]: v for k, v in record.items() if k.startswith("stage:")}
            builds.append({
                "build_id": record.get("build_id"), "partner_id": record.get("partner_id"),
                "build_type": record.get("build_type"), "app_version": record.get("app_version"),
                "started_ts": float(record["started_ts"]) if "started_ts" in record else None,
                "stages": stages, "stages_done": sum(1 for v in stages.values() if v != "failed"),
            })
        return builds[:limit]

    # -- partners ------------------------------------------------------------------------------
    def partners(self, scope: Scope) -> list[dict]:
        """Partner records (current tier, quota, status) of the scope's partners, with builds this
        UTC month."""
        now = self.clock()
        records = self._partner_records(_partners(scope))
        if not records:
            return []
        month_start = _month_start(now)
        # the all-partner rollup carries a count per partner (pc:<id>:<status>): one read for all
        month = self.totals(cover_range(month_start, now, now), system_scope(), kinds=("b",))
        for record in records:
            pid = record["partner_id"]
            used = month.count("b", rf.partner_finished(pid))
            record["builds_this_month"] = record["quota_used"] = int(used)
            quota = record["monthly_build_quota"]
            record["quota_used_ratio"] = (used / quota) if quota else None
            record["updated_ts"] = record.pop("ts")
        records.sort(key=lambda r: r["partner_id"])
        return records

    def partner_names(self, scope: Scope) -> dict[str, str]:
        """partner_id → display name of the scope's partners (one read; for pickers)."""
        return dict(sorted((r["partner_id"], r["name"]) for r in self._partner_records(_partners(scope))))

    def _partner_records(self, partners: list[str] | None) -> list[dict]:
        """Current partner records, limited to `partners` (None = all)."""
        if partners is not None and not partners:
            return []
        raw = self.store.run(lambda c: c.hvals(self.keys.partners()))
        visible = None if partners is None else set(partners)
        records = (orjson.loads(blob) for blob in raw)
        return [r for r in records if visible is None or r["partner_id"] in visible]

    def partner_history(self, scope: Scope, partner_id: str) -> list[dict]:
        """A partner's record changes in ts order, each marked upgrade / downgrade / status change
        (empty when the scope does not hold the partner)."""
        partners = _partners(scope)
        if partners is not None and partner_id not in partners:
            return []
        return self._histories([partner_id])[partner_id]

    def partner_histories(self, scope: Scope) -> dict[str, list[dict]]:
        """partner_history of every partner of the scope (known records), in one round trip."""
        return self._histories(list(self.partner_names(scope)))

    def _histories(self, ids: list[str]) -> dict[str, list[dict]]:

        def fetch(client):
            pipe = client.pipeline(transaction=False)
            for pid in ids:
                pipe.zrange(self.keys.partner_history(pid), 0, -1)
            return pipe.execute()

        return {pid: _history_changes(rows) for pid, rows in zip(ids, self.store.run(fetch) if ids else [])}


def _history_changes(rows: list[bytes]) -> list[dict]:
    """Records in ts order, each marked created / upgrade / downgrade / <status> / update."""
    order = TIER_RANK
    out, previous = [], None
    for blob in rows:
        record = orjson.loads(blob)
        change = "created"
        if previous is not None:
            if order[record["tier"]] > order[previous["tier"]]:
                change = "upgrade"
            elif order[record["tier"]] < order[previous["tier"]]:
                change = "downgrade"
            elif record["status"] != previous["status"]:
                change = record["status"]
            else:
                change = "update"
        out.append({**record, "change": change})
        previous = record
    return out


def _add_all(sums: list[dict]) -> dict:
    """Field-wise sum of dicts (a new dict; the inputs are not modified)."""
    total: dict = {}
    for fields in sums:
        if not fields:
            continue
        if total:
            get = total.get
            for f, v in fields.items():
                total[f] = get(f, 0) + v
        else:
            total.update(fields)
    return total


_STEP = {res.name: res.step_s for res in RESOLUTIONS}


def resolution_for_step_or_coarser(step_s: int, start: float, now: float) -> Resolution:
    """The resolution for a series step; steps finer than what is kept at `start` are widened."""
    for res in RESOLUTIONS:
        widened = max(step_s, res.step_s)
        try:
            return resolution_for_step(widened - widened % res.step_s, start, now)
        except ValueError:
            continue
    return RESOLUTIONS[-1]


def _kinds_for(metric: str) -> tuple[str, ...]:
    if metric.startswith("duration_p"):
        return ("bh",)
    if metric in ("assets", "compression_ratio", "quality_avg"):
        return ("a",)
    return ("b",)


def status_counts(totals: Totals) -> dict[str, float]:
    """Finished builds by status, in one pass over the `b` fields."""
    out: dict[str, float] = defaultdict(int)
    for f, v in totals.b.items():
        if f.startswith(rf.FINISHED):
            out[rf.status_of(f)] += v
    return out


def _finished_value(name: str):
    def value(totals: Totals):
        n = status_counts(totals)
        succeeded, failed, cancelled = n["success"], n["failed"], n["cancelled"]
        if name == "success_rate":
            return succeeded / (succeeded + failed) if succeeded + failed else None
        return int({"builds": succeeded + failed + cancelled, "builds_succeeded": succeeded,
                    "builds_failed": failed, "builds_cancelled": cancelled}[name])
    return value


def _quantile_value(q: float):
    return lambda totals: sketch.quantiles(totals.bh, (q,))[0]


# The series metrics read often (anomalies, trends) computed from just the fields they need; the
# others from the whole summary (same definitions: Totals.summary).
_FAST_VALUES = {
    **{m: _finished_value(m) for m in ("builds", "builds_succeeded", "builds_failed", "builds_cancelled",
                                       "success_rate")},
    "duration_p50": _quantile_value(0.5), "duration_p95": _quantile_value(0.95), "duration_p99": _quantile_value(0.99),
}


def _metric_value(metric: str, totals: Totals):
    fast = _FAST_VALUES.get(metric)
    if fast is not None:
        return fast(totals)
    s = totals.summary()
    return {
        "builds_started": s["builds_started"], "duration_avg": s["duration_avg_s"],
        "assets": s["assets_processed"], "compression_ratio": s["asset_compression_ratio_avg"],
        "quality_avg": s["asset_quality_avg"], "active_partners": s["active_partners"],
    }[metric]


def _month_start(ts: float) -> int:
    d = datetime.fromtimestamp(ts, tz=timezone.utc)
    return int(datetime(d.year, d.month, 1, tzinfo=timezone.utc).timestamp())
