"""The build log: one row per `build.finished` event, read from the raw-event partitions.

Two ways in:
* `iter_raw` / `iter_builds` stream the events of a range straight from the store, a partition and
  a slice of chunks at a time (exports: flat memory, no cap).
* `BuildLog.table(scope)` answers the builds grid and the slowest-builds analysis from per-day
  column tables ("facts": numpy columns, the build's stage durations joined in). A day's facts are
  built once from its partitions (its `build.finished` partition; the `build.stage` partitions of
  that day and the day before, for builds that ran over midnight), kept in the store for every
  process and instance (`Keys.build_facts`), and checked on every read against the lengths of the
  partitions they were built from: partitions only grow (RPUSH of batch chunks; retention drops the
  whole key), so equal lengths mean the same content. A late event makes its day's facts be built
  again. Recent days change all the time, so they are not stored: `BuildLog` extends them in
  process with the chunks added since the last look. `warm()` builds the stored days ahead of the
  pages (the background worker calls it), so a page does not wait for a parse.

A facts row carries its position in the day's partition: the grid filters and sorts the facts and
parses only the partitions of the days its page of rows comes from.
"""
from __future__ import annotations

import io
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from operator import itemgetter
from dataclasses import dataclass, fields as dataclass_fields

import numpy as np
import orjson

from services.analytics.signatures import signature
from services.scope import Scope
from services.store import Store, StoreUnavailable
from services.store.keys import day_of
from services.store.store import STORE_ERRORS
from services.vocabulary import STAGES

__all__ = ["BuildLog", "BuildTable", "DurationProfile", "iter_builds", "iter_raw", "iter_raw_batches", "BUILD_COLUMNS", "MAX_EXPORT_DAYS", "RECENT_DAYS"]

DAY_S = 86400
CHUNKS_PER_READ = 64  # raw chunks (batches) fetched per round trip while streaming
MAX_EXPORT_DAYS = 800  # partitions one export may walk (retention bounds what they hold)
RECENT_DAYS = 2  # today and yesterday: extended in process, not stored
FACTS_VERSION = 2  # part of every stored stamp: a change of the facts rebuilds them
BUILD_COLUMNS = ("build_id", "partner_id", "build_type", "status", "finished_at", "duration_s",
                 "failed_stage", "error_category", "error_signature", "error_message")
_STAGE_INDEX = {stage: i for i, stage in enumerate(STAGES)}


def _days(start: float, end: float) -> list[int]:
    first = int(start // DAY_S) * DAY_S
    return list(range(first, -(-int(math.ceil(end)) // DAY_S) * DAY_S, DAY_S)) if end > start else []


def iter_raw_batches(store: Store, scope: Scope, event_type: str) -> Iterator[list[dict]]:
    """Raw events of one type with ts in the scope's [start, end) and of its partners, a stored
    batch at a time (a list per chunk; empty lists are skipped), day by day (arrival order inside a
    day), CHUNKS_PER_READ chunks per round trip. A day wholly inside the range and without a
    partner filter passes its batches through unfiltered (every event of a partition is of its day)."""
    partners = scope.partner_list()
    allowed = None if partners is None else frozenset(partners)
    if allowed is not None and not allowed:
        return
    start, end = scope.start, scope.end
    days = _days(start, end)
    if len(days) > MAX_EXPORT_DAYS:
        raise ValueError(f"from: more than {MAX_EXPORT_DAYS} days")
    loads = orjson.loads
    keys = [store.keys.raw(event_type, day_of(day)) for day in days]
    for index, chunks in _slices(store, keys):
        day = days[index]
        whole = allowed is None and start <= day and day + DAY_S <= end
        for chunk in chunks:
            events = loads(chunk)
            if not whole:
                events = [e for e in events if start <= e["ts"] < end
                          and (allowed is None or e["partner_id"] in allowed)]
            if events:
                yield events


def _slices(store: Store, keys: list[str]) -> Iterator[tuple[int, list[bytes]]]:
    """(key index, chunks) of every key, CHUNKS_PER_READ chunks per round trip, the next round trip
    already under way on a helper thread while the caller parses this slice (the socket wait
    releases the interpreter lock: a seventh of an export's time was spent waiting on it)."""
    if not keys:
        return

    def fetch(key: str, offset: int) -> list[bytes]:
        return store.run(lambda c: c.lrange(key, offset, offset + CHUNKS_PER_READ - 1))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="raw-read") as pool:
        index, offset = 0, 0
        pending = pool.submit(fetch, keys[0], 0)
        while pending is not None:
            chunks = pending.result()
            current = index
            if len(chunks) == CHUNKS_PER_READ:  # this partition may hold more
                offset += CHUNKS_PER_READ
            else:
                index, offset = index + 1, 0
            pending = pool.submit(fetch, keys[index], offset) if index < len(keys) else None
            if chunks:
                yield current, chunks


def iter_raw(store: Store, scope: Scope, event_type: str) -> Iterator[dict]:
    """The events of `iter_raw_batches` one by one."""
    return chain.from_iterable(iter_raw_batches(store, scope, event_type))


_FINISHED_HEAD = itemgetter("build_id", "partner_id", "build_type", "status", "ts", "duration_s")  # required
_NO_FAILURE = (None, None, None, None)


def _finished_rows(events: list[dict]) -> list[tuple]:
    """BUILD_COLUMNS rows of finished events (the signature of a failed build's message)."""
    rows = list(map(_FINISHED_HEAD, events))
    for i, e in enumerate(events):
        if "error_message" in e or "failed_stage" in e or "error_category" in e:  # optional: a success has none
            message = e.get("error_message")
            sig = signature(message)[0] if message and e["status"] == "failed" else None
            rows[i] += (e.get("failed_stage"), e.get("error_category"), sig, message)
        else:
            rows[i] += _NO_FAILURE
    return rows


def iter_builds(store: Store, scope: Scope) -> Iterator[tuple]:
    """Rows (BUILD_COLUMNS order, finished_at as epoch seconds) of every build finished in the
    scope's [start, end) and partners."""
    return chain.from_iterable(map(_finished_rows, iter_raw_batches(store, scope, "build.finished")))


@dataclass
class BuildTable:
    """Facts of finished builds, one entry per row: the day and position of the row's event in that
    day's partition, the filterable columns, and the stage durations (rows × STAGES, NaN where a
    stage did not run or was skipped)."""

    day: np.ndarray
    pos: np.ndarray
    partner_id: np.ndarray
    build_type: np.ndarray
    status: np.ndarray
    finished_at: np.ndarray
    duration_s: np.ndarray
    failed_stage: np.ndarray
    error_category: np.ndarray
    error_signature: np.ndarray
    stage_s: np.ndarray

    def __len__(self) -> int:
        return len(self.finished_at)

    def take(self, index) -> "BuildTable":
        """The rows at `index` (a mask or positions)."""
        return BuildTable(**{f.name: getattr(self, f.name)[index] for f in dataclass_fields(self)})

    @classmethod
    def concat(cls, tables: list["BuildTable"]) -> "BuildTable":
        """One table of several, in order."""
        if not tables:
            return _empty_table()
        if len(tables) == 1:
            return tables[0]
        return cls(**{f.name: np.concatenate([getattr(t, f.name) for t in tables]) for f in dataclass_fields(cls)})


@dataclass(frozen=True)
class DurationProfile:
    """Completed and failed builds (cancelled ones left out) of some rows of the facts: their
    durations in descending order and the running sums of their stage seconds, so "the stage
    seconds of the builds at least T long" is one search: `cum_stage[count_at_least(T)]`."""

    durations: np.ndarray  # descending
    cum_stage: np.ndarray  # (len + 1) × STAGES, float64: row k = stage seconds of the k longest builds

    @classmethod
    def of(cls, status: np.ndarray, duration_s: np.ndarray, stage_s: np.ndarray) -> "DurationProfile":
        keep = status != "cancelled"
        durations = duration_s[keep]
        order = np.argsort(-durations, kind="stable")
        stages = np.nan_to_num(stage_s[keep][order].astype(np.float64), nan=0.0)
        cum = np.empty((len(durations) + 1, len(STAGES)))
        cum[0] = 0.0
        np.cumsum(stages, axis=0, out=cum[1:])
        return cls(durations[order], cum)

    def count_at_least(self, threshold: float) -> int:
        return int(np.searchsorted(-self.durations, -threshold, side="right"))


def _empty_table() -> BuildTable:
    """A table without rows."""
    obj = np.empty(0, dtype=object)
    return BuildTable(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int32), obj, obj, obj, np.empty(0),
                      np.empty(0), obj, obj, obj, np.empty((0, len(STAGES)), dtype=np.float32))


# -- building one day's facts ------------------------------------------------------------------------
def _stage_map(chunks: list[bytes]) -> dict[str, list[float]]:
    """build id → stage durations (NaN where none) from stage-partition chunks."""
    out: dict[str, list[float]] = {}
    nan = float("nan")
    width = len(STAGES)
    index = _STAGE_INDEX
    for chunk in chunks:
        for e in orjson.loads(chunk):
            if e["status"] == "skipped":
                continue
            durations = out.get(e["build_id"])
            if durations is None:
                durations = out[e["build_id"]] = [nan] * width
            durations[index[e["stage"]]] = e["duration_s"]
    return out


def _codes(values: list, vocab: dict) -> np.ndarray:
    get = vocab.setdefault
    return np.fromiter((get(v, len(vocab)) for v in values), dtype=np.int32, count=len(values))


def _facts(day: int, finished: list[dict], stages: dict, earlier: dict) -> BuildTable:
    """One day's facts from its finished events and its builds' stage durations."""
    n = len(finished)
    if not n:
        return _empty_table()
    stage = np.full((n, len(STAGES)), np.nan, dtype=np.float32)
    for r, e in enumerate(finished):
        build_id = e["build_id"]
        here = stages.get(build_id)
        before = earlier.get(build_id)
        if here is not None:
            stage[r] = here
            if before is not None:  # a build that ran over midnight: its earlier stages are the day before's
                stage[r] = np.where(np.isnan(stage[r]), before, stage[r])
        elif before is not None:
            stage[r] = before
    sigs = [signature(e["error_message"])[0] if e.get("error_message") and e["status"] == "failed" else None
            for e in finished]
    col = lambda name: np.array([e.get(name) for e in finished], dtype=object)  # noqa: E731

    def failure(name):  # a failed build without a stage or category is 'unknown', as the rollups count it
        return np.array([e.get(name) or ("unknown" if e["status"] == "failed" else None) for e in finished],
                        dtype=object)
    return BuildTable(np.full(n, day, dtype=np.int64), np.arange(n, dtype=np.int32), col("partner_id"),
                      col("build_type"), col("status"), np.array([e["ts"] for e in finished], dtype=float),
                      np.array([e["duration_s"] for e in finished], dtype=float), failure("failed_stage"),
                      failure("error_category"), np.array(sigs, dtype=object), stage)


_EMPTY = _empty_table()  # shared, never modified: a day without builds


def _pack(table: BuildTable) -> bytes:
    """The stored form of a day's facts: numeric columns, and text columns as codes + vocabularies."""
    vocab: dict[str, list] = {}
    arrays = {"finished_at": table.finished_at, "duration_s": table.duration_s, "stage_s": table.stage_s}
    for name in ("partner_id", "build_type", "status", "failed_stage", "error_category", "error_signature"):
        words: dict = {}
        arrays[name] = _codes(list(getattr(table, name)), words)
        vocab[name] = list(words)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return orjson.dumps(vocab) + b"\n" + buffer.getvalue()


def _unpack(day: int, blob: bytes) -> BuildTable:
    head, _, body = blob.partition(b"\n")
    vocab = orjson.loads(head)
    data = np.load(io.BytesIO(body))
    words = {name: np.array(values, dtype=object) for name, values in vocab.items()}
    n = len(data["finished_at"])
    text = {name: (words[name][data[name]] if n else np.empty(0, dtype=object)) for name in vocab}
    return BuildTable(np.full(n, day, dtype=np.int64), np.arange(n, dtype=np.int32), text["partner_id"],
                      text["build_type"], text["status"], data["finished_at"], data["duration_s"],
                      text["failed_stage"], text["error_category"], text["error_signature"], data["stage_s"])


class _Recent:
    """A recent day extended in process: its finished events so far and its builds' stages."""

    __slots__ = ("f_len", "s_len", "finished", "stages", "table", "stamp")

    def __init__(self):
        self.f_len = self.s_len = 0
        self.finished: list[dict] = []
        self.stages: dict[str, list[float]] = {}
        self.table: BuildTable | None = None
        self.stamp: tuple = ()


class BuildLog:
    """Per-day facts of finished builds (see the module docstring). In process: the recent days
    and up to `cached_days` stored days."""

    def __init__(self, store: Store, *, clock: Callable[[], float], retention_s: int, cached_days: int = 200):
        self.store = store
        self.clock = clock
        self.retention_s = retention_s
        self.cached_days = cached_days
        self._stored: OrderedDict[int, tuple[tuple, BuildTable]] = OrderedDict()
        self._recent: dict[int, _Recent] = {}
        self._profiles: OrderedDict[int, tuple[BuildTable, DurationProfile]] = OrderedDict()
        self._lock = threading.Lock()

    def _partition_keys(self, day: int) -> tuple[str, str]:
        keys = self.store.keys
        return keys.raw("build.finished", day_of(day)), keys.raw("build.stage", day_of(day))

    def table(self, scope: Scope) -> BuildTable:
        """Facts of the builds finished in the scope's [start, end) and partners, in day order
        (days whose stored facts are missing or out of date are built first)."""
        return self.table_ready(scope, build=True)[0]

    def _parts(self, scope: Scope, build: bool) -> tuple[list[tuple[BuildTable, np.ndarray | None]], int]:
        """([(a ready day's table, the mask of its rows in the scope, or None for all of them)],
        days pending) — see `table_ready`."""
        partners = scope.partner_list()
        if partners is not None and not partners:
            return [], 0
        days = _days(scope.start, scope.end)
        if len(days) > MAX_EXPORT_DAYS:
            raise ValueError(f"from: more than {MAX_EXPORT_DAYS} days")
        wanted = None if partners is None else np.array(sorted(partners), dtype=object)
        tables, stale = self._tables(days, build)
        missing = sum(1 for t in tables if t is None) + stale
        parts = []
        for table in tables:
            if table is None or not len(table):
                continue
            mask = (table.finished_at >= scope.start) & (table.finished_at < scope.end)
            if wanted is not None:
                mask &= np.isin(table.partner_id, wanted)
            parts.append((table, None if mask.all() else mask))
        return parts, missing

    def table_ready(self, scope: Scope, *, build: bool = False,
                    columns: tuple[str, ...] | None = None) -> tuple[BuildTable | dict, int]:
        """(facts of the days that are ready, the number of days whose facts are still to be built:
        left out, or — after a late event — answered as they were before it). With `build`, every
        day is current: those days are built first. `columns`: only those, as {name: array} (a
        90-day table is ~450,000 rows: copying the columns nobody reads is most of the cost)."""
        parts, missing = self._parts(scope, build)
        if columns is not None:
            empty = _empty_table()
            picked = [{c: getattr(t, c) if mask is None else getattr(t, c)[mask] for c in columns} for t, mask in parts]
            return {c: np.concatenate([p[c] for p in picked]) if picked else getattr(empty, c) for c in columns}, missing
        return BuildTable.concat([t if mask is None else t.take(mask) for t, mask in parts]), missing

    def profiles_ready(self, scope: Scope, *, build: bool = False) -> tuple[list["DurationProfile"], int]:
        """(the duration profile of each ready day's builds in the scope, days pending): what the
        slowest-builds analysis needs. A whole day's profile is kept with its table (a 90-day
        period then sums 90 profiles instead of sorting 450,000 rows); the scope's edge days and
        partner filters are profiled on the fly."""
        parts, missing = self._parts(scope, build)
        out = []
        for table, mask in parts:
            if mask is not None:
                out.append(DurationProfile.of(table.status[mask], table.duration_s[mask], table.stage_s[mask]))
                continue
            with self._lock:
                hit = self._profiles.get(table.day[0])
            if hit is None or hit[0] is not table:
                hit = (table, DurationProfile.of(table.status, table.duration_s, table.stage_s))
                with self._lock:
                    self._profiles[table.day[0]] = hit
                    self._profiles.move_to_end(table.day[0])
                    while len(self._profiles) > self.cached_days + RECENT_DAYS:
                        self._profiles.popitem(last=False)
            out.append(hit[1])
        return out, missing

    def _tables(self, days: list[int], build: bool) -> tuple[list[BuildTable | None], int]:
        recent_from = (int(self.clock() // DAY_S) - RECENT_DAYS + 1) * DAY_S
        stored_days = [d for d in days if d < recent_from]
        tables, stale = self._stored_tables(stored_days, build) if stored_days else ([], 0)
        out = dict(zip(stored_days, tables))
        with self._lock:
            for day in days:
                if day >= recent_from:
                    out[day] = self._recent_table(day)
            # no longer recent (kept a day longer: the day before the recent ones needs its stages,
            # and a day just left behind is stored from what was read of it)
            for day in [d for d in self._recent if d < recent_from - 2 * DAY_S]:
                del self._recent[day]
        return [out[d] for d in days], stale

    # -- stored days ---------------------------------------------------------------------------------
    def _stamps(self, days: list[int]) -> tuple[list[tuple], list[bytes | None]]:
        """(current partition lengths, stored stamp) of each day, in one round trip."""
        try:
            pipe = self.store.client.pipeline(transaction=False)
            for day in days:
                f_key, s_key = self._partition_keys(day)
                pipe.llen(f_key)
                pipe.llen(s_key)
                pipe.llen(self._partition_keys(day - DAY_S)[1])
                pipe.hget(self.store.keys.build_facts(day_of(day)), "stamp")
            replies = pipe.execute()
        except STORE_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc
        stamps = [(FACTS_VERSION, *replies[i:i + 3]) for i in range(0, len(replies), 4)]
        return stamps, replies[3::4]

    def _stored_tables(self, days: list[int], build: bool) -> tuple[list[BuildTable | None], int]:
        """The stored days' tables and how many of them are out of date (a late event since they
        were built). Without `build`, an out-of-date day answers with the table it had (marked
        pending) while the worker builds it again; a day never built answers None."""
        stamps, saved = self._stamps(days)
        out, stale = [], 0
        for day, stamp, saved_stamp in zip(days, stamps, saved):
            if stamp[1] == 0:
                out.append(_EMPTY)  # no build finished that day (not cached: it costs nothing)
                continue
            with self._lock:
                hit = self._stored.get(day)
                if hit is not None:
                    self._stored.move_to_end(day)
            if hit is not None and hit[0] == stamp:
                out.append(hit[1])
                continue
            current = saved_stamp is not None and tuple(orjson.loads(saved_stamp)) == stamp
            blob = self.store.run(lambda c: c.hget(self.store.keys.build_facts(day_of(day)), "facts")) \
                if saved_stamp is not None and (current or (not build and hit is None)) else None
            if current and blob:
                table = _unpack(day, blob)
            elif build:
                table = self._build_day(day, stamp)
            else:
                table = self._from_recent(day, stamp)
                if table is None:  # out of date: what this process or the store had, until rebuilt
                    previous = hit[1] if hit is not None else (_unpack(day, blob) if blob else None)
                    out.append(previous)
                    stale += previous is not None
                    continue
            with self._lock:
                self._stored[day] = (stamp, table)
                self._stored.move_to_end(day)
                while len(self._stored) > self.cached_days:
                    self._stored.popitem(last=False)
            out.append(table)
        return out, stale

    def _from_recent(self, day: int, stamp: tuple) -> BuildTable | None:
        """A day that has just left the recent window, built from what this process read of it while
        it was recent (when that is all of it) and stored; None otherwise."""
        with self._lock:
            entry, prev = self._recent.get(day), self._recent.get(day - DAY_S)
            if entry is None or prev is None or (entry.f_len, entry.s_len, prev.s_len) != stamp[1:]:
                return None
            table = _facts(day, entry.finished, entry.stages, prev.stages)
        self._save(day, stamp, table)
        return table

    def _build_day(self, day: int, stamp: tuple) -> BuildTable:
        """Parse a day's partitions into facts and store them (with the lengths they were read at)."""
        f_key, s_key = self._partition_keys(day)
        prev_key = self._partition_keys(day - DAY_S)[1]
        _, f_len, s_len, p_len = stamp
        f_chunks, s_chunks, p_chunks = self.store.run(lambda c: (
            c.lrange(f_key, 0, f_len - 1) if f_len else [], c.lrange(s_key, 0, s_len - 1) if s_len else [],
            c.lrange(prev_key, 0, p_len - 1) if p_len else []))
        finished = [e for chunk in f_chunks for e in orjson.loads(chunk)]
        table = _facts(day, finished, _stage_map(s_chunks), _stage_map(p_chunks))
        self._save(day, stamp, table)
        return table

    def _save(self, day: int, stamp: tuple, table: BuildTable) -> None:
        key = self.store.keys.build_facts(day_of(day))
        expire_at = day + DAY_S + self.retention_s
        self.store.run(lambda c: (c.hset(key, mapping={"stamp": orjson.dumps(list(stamp)), "facts": _pack(table)}),
                                  c.expireat(key, expire_at)))

    def warm(self, days: int, stop: threading.Event | None = None) -> int:
        """Build the stored facts of the last `days` days that are missing or out of date; the
        number built (the background worker calls this so pages find them ready)."""
        today = int(self.clock() // DAY_S) * DAY_S
        wanted = [today - i * DAY_S for i in range(RECENT_DAYS, RECENT_DAYS + days)]
        stamps, saved = self._stamps(wanted)
        built = 0
        for day, stamp, saved_stamp in zip(wanted, stamps, saved):
            if stop is not None and stop.is_set():
                break
            if stamp[1] == 0:
                continue  # no builds finished that day
            if saved_stamp is None or tuple(orjson.loads(saved_stamp)) != stamp:
                self._build_day(day, stamp)
                built += 1
        return built

    # -- recent days -----------------------------------------------------------------------------------
    def _recent_table(self, day: int) -> BuildTable:
        prev = self._refresh(day - DAY_S, finished=False)
        entry = self._refresh(day, finished=True)
        stamp = (entry.f_len, entry.s_len, prev.s_len)
        if entry.table is None or entry.stamp != stamp:
            entry.table = _facts(day, entry.finished, entry.stages, prev.stages)
            entry.stamp = stamp
        return entry.table

    def _refresh(self, day: int, *, finished: bool) -> _Recent:
        """The day's entry with every chunk added to its partitions since the last look (one round
        trip); `finished=False` reads only the stage partition (the day before's, for its stages)."""
        f_key, s_key = self._partition_keys(day)
        entry = self._recent.get(day)
        if entry is None:
            entry = self._recent[day] = _Recent()
        try:
            pipe = self.store.client.pipeline(transaction=False)
            pipe.llen(s_key)
            pipe.lrange(s_key, entry.s_len, -1)
            if finished:
                pipe.llen(f_key)
                pipe.lrange(f_key, entry.f_len, -1)
            replies = pipe.execute()
        except STORE_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc
        if replies[0] < entry.s_len or (finished and replies[2] < entry.f_len):
            self._recent[day] = _Recent()  # the partition expired and was written again
            return self._refresh(day, finished=finished)
        if replies[1]:
            for build_id, durations in _stage_map(replies[1]).items():
                known = entry.stages.get(build_id)
                entry.stages[build_id] = durations if known is None else \
                    [d if d == d else k for d, k in zip(durations, known)]
            entry.s_len += len(replies[1])
        if finished and replies[3]:
            entry.finished.extend(e for chunk in replies[3] for e in orjson.loads(chunk))
            entry.f_len += len(replies[3])
        return entry

    # -- rows of the grid ---------------------------------------------------------------------------
    def rows(self, table: BuildTable) -> list[dict]:
        """The full rows (BUILD_COLUMNS) of a (small) facts table, read from their partitions."""
        by_day: dict[int, list[int]] = {}
        for day, pos in zip(table.day.tolist(), table.pos.tolist()):
            by_day.setdefault(day, []).append(pos)
        events: dict[tuple[int, int], dict] = {}
        for day, positions in by_day.items():
            offset, finished = self._day_events(day, max(positions) + 1, min(positions))
            for pos in positions:
                events[(day, pos)] = finished[pos - offset]
        picked = [events[(day, pos)] for day, pos in zip(table.day.tolist(), table.pos.tolist())]
        return [dict(zip(BUILD_COLUMNS, row)) for row in _finished_rows(picked)]

    def _day_events(self, day: int, needed: int, lowest: int = 0) -> tuple[int, list[dict]]:
        """(position of the first, the day's finished events from there on), covering positions
        `lowest` up to `needed` − 1: what this process holds of a recent day when that reaches far
        enough; else, for a stored day whose facts match the partition, its last batches only, read
        from the end until they reach `lowest` (the newest builds of a day are its last batches:
        a page of recent builds does not read the whole day); else the whole partition."""
        with self._lock:
            recent = self._recent.get(day)
            if recent is not None and len(recent.finished) >= needed:
                return 0, recent.finished
            stored = self._stored.get(day)
        f_key = self._partition_keys(day)[0]
        if stored is not None and lowest > 0:
            (_, batches, *_), table = stored
            total, count = len(table), 8
            while count < batches:
                def tail(client, count=count):
                    pipe = client.pipeline(transaction=False)
                    pipe.llen(f_key)
                    pipe.lrange(f_key, -count, -1)
                    return pipe.execute()

                length, chunks = self.store.run(tail)
                if length != batches:  # a late batch since the facts were built: positions moved
                    break
                events = [e for chunk in chunks for e in orjson.loads(chunk)]
                if total - len(events) <= lowest:
                    return total - len(events), events
                count *= 4
        return 0, [e for chunk in self.store.run(lambda c: c.lrange(f_key, 0, -1)) for e in orjson.loads(chunk)]

