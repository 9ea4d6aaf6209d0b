"""The Redis/Valkey store: connection, the atomic ingest script, and bulk reads."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from services.store.deadline import Breaker, NodeBreakers, guarded
from services.store.keys import Keys
from services.ingest.plan import DELTA_SEPARATOR, TOKEN_FIELD, WritePlan, merge_deltas, unique_token

__all__ = ["Store", "StoreUnavailable", "StoreNotDurable", "ApplyResult", "connect"]

# ClusterDownError: a cluster's CLUSTERDOWN / MASTERDOWN reply (slots without a serving primary)
STORE_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, redis.exceptions.ClusterDownError,
                ConnectionRefusedError, OSError)


class StoreUnavailable(Exception):
    """The store cannot be reached (or is still loading); callers answer 503 and retry later."""


def connect(url: str, *, timeout_s: float = 2.0) -> redis.Redis:
    """A redis-py client for `url` whose every call has the deadline `timeout_s` and fails at once
    while the store is known to be out (services.store.deadline).

    `url`: redis://, rediss://, unix:// (one server); redis+sentinel://host:port[,host:port]/<master>
    (the master the sentinels name, followed through failovers); redis+cluster://host:port[,host:port]
    (a cluster, discovered from those nodes: one must answer now; docs/cluster.md). A lost
    connection is retried once at once (a pooled connection to a restarted server), a timeout never:
    the deadline is the whole wait (a cluster client retries it, but the node's breaker, open by
    then, refuses the retry at once).
    """
    breaker = dict(cooldown_s=min(timeout_s, 1.0), probe_s=timeout_s + 0.5)
    options = dict(socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=30,
                   decode_responses=False,
                   retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)))
    scheme = url.split("://", 1)[0].lower()
    if scheme == "redis+sentinel":
        client = _sentinel_client(url, options)
    elif scheme == "redis+cluster":
        return _cluster_client(url, options, NodeBreakers(**breaker))
    else:
        client = redis.Redis.from_url(url, **options)
    pool = client.connection_pool
    pool.connection_class = guarded(pool.connection_class, Breaker(**breaker))
    return client


def _hosts(netloc: str) -> list[tuple[str, int]]:
    """[(host, port)] of "h1:p1,h2:p2" (IPv6 hosts in brackets)."""
    nodes = []
    for part in netloc.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"store URL: {part!r} is not host:port")
        nodes.append((host.strip("[]"), int(port)))
    return nodes


def _sentinel_client(url: str, options: dict) -> redis.Redis:
    rest = url.split("://", 1)[1]
    netloc, _, path = rest.partition("/")
    credentials, _, netloc = netloc.rpartition("@")
    master, _, db = path.partition("/")
    if not master:
        raise ValueError("store URL: redis+sentinel:// needs the master's name (redis+sentinel://host:port/<name>)")
    password = credentials.partition(":")[2] or None
    sentinel = Sentinel(_hosts(netloc), sentinel_kwargs={"socket_timeout": options["socket_timeout"],
                                                         "socket_connect_timeout": options["socket_connect_timeout"]},
                        password=password, **options)
    return sentinel.master_for(master, db=int(db or 0))


class _Cluster(redis.RedisCluster):
    """redis-py's cluster client, told apart where one node out would otherwise stop it all."""

    def __init__(self, **options):
        """The first discovery of the cluster's layout raises RedisClusterException unless a node
        answers. Later ones (each lost connection is followed by one) raise redis.ConnectionError
        instead, as one server out does: redis-py raises RedisClusterException ("Redis Cluster
        cannot be connected"), which no caller takes for the store being out."""
        super().__init__(**options)
        discover = self.nodes_manager.initialize

        def initialize(*args, **kwargs):
            try:
                return discover(*args, **kwargs)
            except redis.RedisClusterException as exc:
                if isinstance(exc.__cause__, (redis.ConnectionError, redis.TimeoutError)):
                    raise redis.ConnectionError(str(exc)) from exc
                raise

        self.nodes_manager.initialize = initialize

    def script_load(self, script):
        """Load `script` on every primary that answers. redis-py loads it on all of them or fails,
        so while one is out (its slots unserved, the deployment's maybe not) a script the others had
        not got yet could never run (`Script` loads it on NOSCRIPT through this)."""
        loaded, error = None, None
        for node in self.get_primaries():
            try:
                loaded = self.execute_command("SCRIPT LOAD", script, target_nodes=node)
            except STORE_ERRORS as exc:
                error = exc
        if loaded is None:
            raise error
        return loaded


def _cluster_client(url: str, options: dict, breakers: NodeBreakers) -> _Cluster:
    """A cluster client on the nodes of `url`. redis-py hands `connection_class` on to the nodes'
    connection pools only for a client made from a URL, so the first node is given as one."""
    netloc = url.split("://", 1)[1].partition("/")[0]
    (host, port), *others = _hosts(netloc)
    return _Cluster(url=f"redis://{f'[{host}]' if ':' in host else host}:{port}",
                    startup_nodes=[redis.cluster.ClusterNode(h, p) for h, p in others],
                    connection_class=guarded(redis.Connection, breakers),
                    **{k: v for k, v in options.items() if k != "health_check_interval"})


@dataclass(frozen=True)
class ApplyResult:
    """Outcome of one ingest script call."""

    already_stored: list[int] | None  # plan positions of events already stored (nothing written)
    compact: list[str]  # rollup lists long enough to merge


class StoreNotDurable(StoreUnavailable):
    """The store took a batch but could not confirm the promised durability in time (or cannot at
    all: no append-only file); the producer retries, and the replay is recognised."""


class Store:
    """Owns the Redis client and the scripts; everything else reads through it.

    `durability` (LULUPAY_INGEST_DURABILITY): "aof" = `apply` returns only once the batch is in the
    store's append-only file on disk (WAITAOF), "memory" = once the store has it in memory;
    `replicas` (LULUPAY_INGEST_REPLICAS): that many replicas must have it too; both waited for at
    most `wait_s`."""

    def __init__(self, client: redis.Redis, keys: Keys, *, durability: str = "memory", replicas: int = 0,
                 wait_s: float = 1.5):
        self.client = client
        self.keys = keys
        self.durability = durability
        self.replicas = replicas
        self.wait_ms = max(1, int(wait_s * 1000))
        scripts = resources.files("services.store").joinpath("scripts")
        self._ingest = client.register_script(scripts.joinpath("ingest.lua").read_text())
        self._compact = client.register_script(scripts.joinpath("compact.lua").read_text())
        self._read = client.register_script(scripts.joinpath("read.lua").read_text())
        self._scripts: dict[str, object] = {}  # other modules' scripts, registered once (see `script`)

    def apply(self, plan: WritePlan) -> ApplyResult:
        """Apply a plan atomically, unless some of its events are already stored."""
        local = 1 if self.durability == "aof" else 0
        anchor = self.keys.script_anchor()
        try:
            if not local and not self.replicas:
                result = self._ingest(keys=[anchor], args=plan.script_args())
            else:  # the wait must run on the connection that wrote: one pipeline
                def write():
                    pipe = self.client.pipeline(transaction=False)
                    self._queue(pipe, self._ingest, [anchor], plan.script_args())
                    wait = ("WAITAOF", local, self.replicas) if local else ("WAIT", self.replicas)
                    pipe.execute_command(*wait, self.wait_ms, **self._on_node_of(anchor))
                    answers = pipe.execute(raise_on_error=False)
                    if isinstance(answers[0], Exception):
                        raise answers[0]
                    return answers

                result, acked = self._loading_scripts(write, self._ingest)
                self._check_durable(acked, local)
        except STORE_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc
        if int(result[0]) == 1:
            return ApplyResult(None, [k.decode() for k in result[1]])
        return ApplyResult([int(i) for i in result[1]], [])

    def _check_durable(self, acked, local: int) -> None:
        """Raise StoreNotDurable unless the WAITAOF/WAIT answer confirms what was asked."""
        if isinstance(acked, redis.ResponseError):
            raise StoreNotDurable(f"the store cannot confirm durability: {acked} (LULUPAY_INGEST_DURABILITY)")
        if isinstance(acked, Exception):
            raise acked
        on_disk, replicas = (int(acked[0]), int(acked[1])) if local else (1, int(acked))
        if on_disk < local:
            raise StoreNotDurable(f"the batch was not on disk within {self.wait_ms} ms")
        if replicas < self.replicas:
            raise StoreNotDurable(f"{replicas} of {self.replicas} replicas had the batch within {self.wait_ms} ms")

    def claim(self, key: str) -> bool:
        """Delete `key`; True when this call deleted it (one caller wins, whoever else tries)."""
        return self.run(lambda c: c.delete(key)) == 1

    def compact(self, keys: list[str]) -> int:
        """Merge each rollup list into one delta (two round trips for all of them)."""
        if not keys:
            return 0
        lists = self.lrange_many(keys)
        ops = []
        for key, deltas in zip(keys, lists):
            if len(deltas) < 2:
                continue
            merged: dict = {}
            for blob in deltas:
                merge_deltas(merged, orjson.loads(blob))
            merged[TOKEN_FIELD] = unique_token()
            ops.append((key, deltas, orjson.dumps(merged)))
        return sum(self.compact_read(ops))

    def compact_read(self, ops: list[tuple[str, list[bytes], bytes]]) -> list[int]:
        """Replace the deltas of each (key, deltas as read, merged delta) by the merged delta, if the
        list still starts with exactly those deltas (else it is left alone): one flag per op."""
        args: list = []
        for key, deltas, merged in ops:
            args += [key, len(deltas), deltas[0], deltas[-1], merged]
        if not args:
            return []
        return [int(flag) for flag in self.run(lambda c: self._compact(keys=[self.keys.script_anchor()], args=args))]

    def ping(self) -> bool:
        """True when the store answers a command on the deployment's keys. Not PING: a cluster client
        sends that to any node, and a node answers it even while it refuses keys (CLUSTERDOWN: a
        slot, maybe another one, has no serving primary)."""
        try:
            self.client.exists(self.keys.script_anchor())
            return True
        except STORE_ERRORS:
            return False

    def lrange_many(self, keys: list[str]) -> list[list[bytes]]:
        """Whole lists of many keys in one round trip."""
        if not keys:
            return []
        try:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.lrange(key, 0, -1)
            return pipe.execute()
        except STORE_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc

    READ_CHUNK = 2000  # keys per read-script call: the server serves other clients between calls

    def read_lists(self, keys: list[str], suffixes: list[bytes], groups: list[int] | None = None,
                   generations: list[str] | None = None) -> list:
        """For each key: 0 if its list still ends with the delta whose end is its suffix (the caller's
        sum of it is current), else the whole list. Suffix b'' = always the list. One round trip.
        `groups` (sizes, summing to len(keys)) are runs of keys read in one script call each, so
        one atomic snapshot (default: all keys one group); groups are packed into calls of about
        READ_CHUNK keys, and a call holds whole groups. `generations`: keys whose values (None when
        absent) are appended as one more element, read in the same call as the last group."""
        if not keys:
            if not generations:
                return []
            return [self.run(lambda c: c.mget(generations))]
        anchor = [self.keys.script_anchor()]
        sep = DELTA_SEPARATOR
        calls: list[tuple[int, int]] = []
        lo = hi = 0
        for size in (groups if groups is not None else [len(keys)]):
            if hi > lo and hi - lo + size > self.READ_CHUNK:
                calls.append((lo, hi))
                lo = hi
            hi += size
        if hi > lo:
            calls.append((lo, hi))

        def read():
            pipe = self.client.pipeline(transaction=False)
            for i, (lo, hi) in enumerate(calls):
                args = [sep.join(k.encode() for k in keys[lo:hi]), sep.join(suffixes[lo:hi])]
                if generations and i == len(calls) - 1:
                    args.append(sep.join(g.encode() for g in generations))
                self._queue(pipe, self._read, anchor, args)
            return pipe.execute()

        try:
            out = []
            for part in self._loading_scripts(read, self._read):
                out.extend(part)
            if generations:
                out[-1] = [g if g else None for g in out[-1]]  # Lua false → nil → None
            return out
        except STORE_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc

    def _queue(self, pipe, script, keys: list[str], args: list) -> None:
        """Queue a call of `script` on `pipe` as a bare EVALSHA: a cluster pipeline refuses redis-py's
        `Script` (it blocks evalsha()), which would also load it first (a SCRIPT EXISTS per
        pipeline); `_loading_scripts` loads it when the server has not got it. Sent to the node of
        its keys by name: else a cluster pipeline asks its default node, any node, for them (COMMAND
        GETKEYS with all the arguments, a round trip per call)."""
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args, **self._on_node_of(keys[0]))

    def _loading_scripts(self, run, *scripts):
        """`run()`, which executes a pipeline `_queue`ing calls of `scripts`. When the server had not
        got one (the first call, a restarted or a promoted node: the script cache is neither
        persisted nor replicated) it answers NOSCRIPT: the scripts are loaded and `run` runs once
        more (a script the server did not have ran nothing)."""
        try:
            return run()
        except redis.exceptions.NoScriptError:
            for script in scripts:
                self.client.script_load(script.script)
            return run()

    def _on_node_of(self, key: str) -> dict:
        """The options sending a command of a cluster pipeline to the node serving `key` (a keyless
        one, WAIT or WAITAOF, would go to redis-py's default node, not the one that wrote); none
        for one server."""
        if isinstance(self.client, redis.RedisCluster):
            return {"target_nodes": self.client.get_node_from_key(key)}
        return {}

    def script(self, source: str):
        """The registered script of `source` (redis-py's `Script`: EVALSHA, loading it when missing),
        created once per store rather than hashed again on every call."""
        registered = self._scripts.get(source)
        if registered is None:
            registered = self._scripts[source] = self.client.register_script(source)
        return registered

    def run(self, fn):
        """Run `fn(client)` translating connection problems into StoreUnavailable."""
        try:
            return fn(self.client)
        except STORE_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc
