"""The alert engine's state in the store (schema: docs/storage.md): the alerts (`alert:state`),
silences (`alert:silences`), each rule's last evaluation (`alert:evals`) and the notification
groups' bookkeeping (`alert:groups`) — hashes of JSON documents, so a new leader takes over exactly
where the last one stopped. Reads are scoped like every read: an alert about a partner is visible to
whoever may see that partner; an alert about no partner (the deployment's own) and every silence
that could match one only to principals who see every partner."""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import replace

import orjson
import redis

from services.alerting.silences import Silence
from services.alerting.state import AlertState
from services.scope import Principal
from services.store import Store

__all__ = ["AlertStore", "AlertStatesBusy", "RESOLVED_KEEP_S", "rule_key"]

RESOLVED_KEEP_S = 86400  # a resolved alert stays in the state (and the API's `resolved`) this long
_DAY_S = 86400


_WATCH_TRIES = 20


class AlertStatesBusy(Exception):
    """The alert states kept changing under a read-modify-write (another writer each time)."""


def _load(raw: bytes) -> AlertState | None:
    try:
        return AlertState.from_dict(orjson.loads(raw))
    except ValueError:
        return None


def _keep_ack(alert: AlertState, stored: bytes | None) -> AlertState:
    """`alert`, with the acknowledgement of the stored record of the same alert (same start) when
    it has one and `alert` neither has nor ended it."""
    if stored is None or alert.acknowledged or alert.state not in ("pending", "firing"):
        return alert
    current = _load(stored)
    if current is None or not current.acknowledged or current.started_at != alert.started_at:
        return alert
    return replace(alert, acknowledged=True, ack_by=current.ack_by, ack_at=current.ack_at,
                   ack_comment=current.ack_comment)


def rule_key(name: str, severity: str) -> str:
    """A rule's identity in the file (the same name may have a warning and a critical level)."""
    return f"{name}|{severity}"


def _visible(principal: Principal | None, partner_id: str | None) -> bool:
    if principal is None:
        return False
    if partner_id is None:
        return principal.sees_every_partner
    return principal.may_see(partner_id)


class AlertStore:
    """Load and save the engine's documents; every method is one round trip."""

    def __init__(self, store: Store, *, retention_s: int):
        self.store = store
        self.keys = store.keys
        self.retention_s = retention_s

    # -- alerts ----------------------------------------------------------------------------------
    def alerts(self) -> dict[str, AlertState]:
        """Every alert the engine tracks, by id."""
        raw = self.store.run(lambda c: c.hgetall(self.keys.alert_states()))
        out = {}
        for key, value in raw.items():
            try:
                state = AlertState.from_dict(orjson.loads(value))
            except ValueError:
                continue  # a record this version cannot read: left for the engine to replace
            out[key.decode()] = state
        return out

    def alert(self, alert_id: str) -> AlertState | None:
        value = self.store.run(lambda c: c.hget(self.keys.alert_states(), alert_id))
        return AlertState.from_dict(orjson.loads(value)) if value else None

    def visible_alerts(self, principal: Principal | None) -> list[AlertState]:
        """The alerts `principal` may see (fail closed: none without a principal)."""
        return [a for a in self.alerts().values() if _visible(principal, a.partner_id)]

    def save_alerts(self, changed: Iterable[AlertState], dropped: Iterable[str] = ()) -> None:
        """Write the alerts that changed and forget the dropped ids, atomically (WATCH): an
        acknowledgement stored since the caller read an alert (the page or the API, during an engine
        round) is kept on the same alert unless the alert resolved (which ends it)."""
        changed, dropped = list(changed), list(dropped)
        if not changed and not dropped:
            return
        key = self.keys.alert_states()

        def read(pipe):
            stored = pipe.hmget(key, [a.id for a in changed]) if changed else []
            return [_keep_ack(a, blob) for a, blob in zip(changed, stored)]

        def write(pipe, merged):
            if merged:
                pipe.hset(key, mapping={a.id: orjson.dumps(a.to_dict()) for a in merged})
            if dropped:
                pipe.hdel(key, *dropped)
        self._watched(read, write)

    def update_alert(self, alert_id: str, change) -> tuple[AlertState, list]:
        """Read one alert (None when unknown), apply `change(current) -> (alert, changes)` and write
        the alert back if it changed, unless the states changed in between (then again): an engine
        round writing meanwhile is never overwritten with a stale alert."""
        key = self.keys.alert_states()

        def read(pipe):
            raw = pipe.hget(key, alert_id)
            return change(_load(raw) if raw else None)

        def write(pipe, result):
            alert, changes = result
            if changes:
                pipe.hset(key, alert.id, orjson.dumps(alert.to_dict()))
        return self._watched(read, write)

    def _watched(self, read, write):
        """`read(pipe)` under WATCH of the alert states, then `write(pipe, what read returned)` in one
        MULTI; both again when the states changed in between. Returns what `read` returned."""
        key = self.keys.alert_states()

        def run(client):
            with client.pipeline(transaction=True) as pipe:
                for _ in range(_WATCH_TRIES):
                    try:
                        pipe.watch(key)
                        result = read(pipe)
                        pipe.multi()
                        write(pipe, result)
                        pipe.execute()
                        return result
                    except redis.WatchError:
                        continue  # another writer landed meanwhile: read and merge again
            raise AlertStatesBusy(f"alert states: still changing after {_WATCH_TRIES} tries")
        return self.store.run(run)

    # -- silences --------------------------------------------------------------------------------
    def silences(self) -> list[Silence]:
        raw = self.store.run(lambda c: c.hgetall(self.keys.alert_silences()))
        out = []
        for value in raw.values():
            try:
                out.append(Silence.from_dict(orjson.loads(value)))
            except ValueError:
                continue
        return sorted(out, key=lambda s: (s.starts_at, s.id))

    def silence(self, silence_id: str) -> Silence | None:
        value = self.store.run(lambda c: c.hget(self.keys.alert_silences(), silence_id))
        return Silence.from_dict(orjson.loads(value)) if value else None

    def add_silence(self, silence: Silence) -> Silence:
        """Store a silence (its id validated by Silence itself)."""
        self.store.run(lambda c: c.hset(self.keys.alert_silences(), silence.id, orjson.dumps(silence.to_dict())))
        return silence

    @staticmethod
    def new_silence_id() -> str:
        return uuid.uuid4().hex

    def expire_silence(self, silence_id: str, now: float) -> Silence | None:
        """End a silence now (DELETE: kept, expired, for the history); None when unknown."""
        current = self.silence(silence_id)
        if current is None:
            return None
        ended = Silence(id=current.id, matchers=current.matchers, starts_at=min(current.starts_at, now - 1e-3),
                        ends_at=now, author=current.author, comment=current.comment,
                        created_at=current.created_at) if current.ends_at > now else current
        self.add_silence(ended)
        return ended

    def forget_old_silences(self, now: float) -> int:
        """Drop silences that ended a retention window ago."""
        old = [s.id for s in self.silences() if s.ends_at < now - self.retention_s]
        if old:
            self.store.run(lambda c: c.hdel(self.keys.alert_silences(), *old))
        return len(old)

    # -- evaluations and groups --------------------------------------------------------------------
    def evaluations(self) -> dict[str, dict]:
        raw = self.store.run(lambda c: c.hgetall(self.keys.alert_evaluations()))
        return {k.decode(): orjson.loads(v) for k, v in raw.items()}

    def save_evaluations(self, evaluations: dict[str, dict], keep: Iterable[str]) -> None:
        """Write this round's evaluations and drop those of rules no longer in the file."""
        keep = set(keep)

        def write(client):
            key = self.keys.alert_evaluations()
            stale = [k for k in client.hkeys(key) if k.decode() not in keep]
            pipe = client.pipeline(transaction=True)
            if evaluations:
                pipe.hset(key, mapping={k: orjson.dumps(v) for k, v in evaluations.items()})
            if stale:
                pipe.hdel(key, *stale)
            pipe.execute()
        self.store.run(write)

    def groups(self) -> dict[str, dict]:
        raw = self.store.run(lambda c: c.hgetall(self.keys.alert_groups()))
        return {k.decode(): orjson.loads(v) for k, v in raw.items()}

    def save_groups(self, changed: dict[str, dict], dropped: Iterable[str] = ()) -> None:
        dropped = list(dropped)
        if not changed and not dropped:
            return

        def write(client):
            pipe = client.pipeline(transaction=True)
            if changed:
                pipe.hset(self.keys.alert_groups(), mapping={k: orjson.dumps(v) for k, v in changed.items()})
            if dropped:
                pipe.hdel(self.keys.alert_groups(), *dropped)
            pipe.execute()
        self.store.run(write)
