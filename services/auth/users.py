"""Users in the store: argon2 password hashes, roles, partners, personal API tokens (stored as
SHA-256 hashes, shown once)."""
from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.scope import MAX_PARTNERS_PER_REQUEST, Principal
from services.store import Store
from services.vocabulary import ROLES, is_partner_id

__all__ = ["UserStore", "User", "UserError", "USER_NAME_RE", "TOKEN_PREFIX", "MIN_PASSWORD_LENGTH"]

USER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
TOKEN_PREFIX = "lpt_"
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024


class UserError(ValueError):
    """A user command that cannot be done (the message says why)."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    partners: tuple[str, ...]
    created_at: float
    session_epoch: int

    def principal(self, via: str) -> Principal:
        return Principal(self.name, self.role, frozenset(self.partners), via=via)


class UserStore:
    """Users and their tokens in the store."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time, hasher: PasswordHasher | None = None):
        self.store = store
        self.keys = store.keys
        self.clock = clock
        self.hasher = hasher or PasswordHasher()
        # verified against when the user does not exist, so a wrong name costs what a wrong password does
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))

    # -- records ------------------------------------------------------------------------------
    def _load(self, name: str) -> dict | None:
        if not isinstance(name, str) or not USER_NAME_RE.fullmatch(name):
            return None
        blob = self.store.run(lambda c: c.hget(self.keys.users(), name))
        return orjson.loads(blob) if blob else None

    def _save(self, record: dict) -> None:
        self.store.run(lambda c: c.hset(self.keys.users(), record["name"], orjson.dumps(record)))

    @staticmethod
    def _user(record: dict) -> User:
        return User(record["name"], record["role"], tuple(record.get("partners") or ()), record["created_at"],
                    int(record.get("session_epoch", 0)))

    def get(self, name: str) -> User | None:
        """The user called `name`, or None."""
        record = self._load(name)
        return self._user(record) if record else None

    def list(self) -> list[User]:
        """Every user, by name."""
        raw = self.store.run(lambda c: c.hvals(self.keys.users()))
        return sorted((self._user(orjson.loads(blob)) for blob in raw), key=lambda u: u.name)

    def add(self, name: str, role: str, partners: Iterable[str], password: str) -> User:
        """Create a user (UserError when the name is taken or an argument is bad)."""
        if not isinstance(name, str) or not USER_NAME_RE.fullmatch(name):
            raise UserError("name: 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
        if role not in ROLES:
            raise UserError(f"role: one of {', '.join(ROLES)}")
        partners = sorted(set(partners))
        for pid in partners:
            if not is_partner_id(pid):
                raise UserError(f"partner: {pid!r} is not a partner id")
        if role == "partner_manager" and not partners:
            raise UserError("a partner_manager needs at least one --partner")
        if role != "partner_manager" and partners:
            raise UserError(f"--partner is only for partner_manager ({role} sees every partner)")
        if len(partners) > MAX_PARTNERS_PER_REQUEST:
            raise UserError(f"at most {MAX_PARTNERS_PER_REQUEST} partners per user")
        # the epoch starts at the creation time: a user removed and added again under the same name
        # never revives a session cookie of the old one
        record = {"name": name, "role": role, "partners": partners, "created_at": self.clock(),
                  "session_epoch": int(self.clock() * 1000), "password_hash": self._hash(password)}
        created = self.store.run(lambda c: c.hsetnx(self.keys.users(), name, orjson.dumps(record)))
        if not created:
            raise UserError(f"user {name!r} already exists")
        return self._user(record)

    def remove(self, name: str) -> bool:
        """Delete a user and revoke its tokens; False when there was none."""
        self.revoke_tokens(name)
        return bool(self.store.run(lambda c: c.hdel(self.keys.users(), name)))

    def set_password(self, name: str, password: str) -> None:
        """A new password; every session of the user ends (its session epoch moves)."""
        record = self._load(name)
        if record is None:
            raise UserError(f"no user {name!r}")
        record["password_hash"] = self._hash(password)
        record["session_epoch"] = int(record.get("session_epoch", 0)) + 1
        self._save(record)

    def _hash(self, password: str) -> str:
        if not isinstance(password, str) or not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
            raise UserError(f"password: {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters")
        return self.hasher.hash(password)

    # -- sign-in ------------------------------------------------------------------------------
    def authenticate(self, name: object, password: object) -> User | None:
        """The user when `password` is theirs, else None — the same work whether or not the user
        exists, so timing does not tell."""
        record = self._load(name) if isinstance(name, str) else None
        stored = record["password_hash"] if record else self._dummy_hash
        if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
            password = ""
        try:
            ok = self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or record is None:
            return None
        if self.hasher.check_needs_rehash(stored):
            record["password_hash"] = self.hasher.hash(password)
            self._save(record)
        return self._user(record)

    # -- personal API tokens ------------------------------------------------------------------
    @staticmethod
    def _token_hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def new_token(self, name: str) -> str:
        """A new personal API token for `name`: returned once, only its hash is stored."""
        if self._load(name) is None:
            raise UserError(f"no user {name!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = self._token_hash(token)

        def write(client):
            pipe = client.pipeline(transaction=True)
            pipe.hset(self.keys.api_tokens(), digest, orjson.dumps({"user": name, "created_at": self.clock()}))
            pipe.sadd(self.keys.user_tokens(name), digest)
            pipe.execute()

        self.store.run(write)
        return token

    def revoke_tokens(self, name: str) -> int:
        """Revoke every token of `name`; returns how many."""
        def revoke(client):
            digests = list(client.smembers(self.keys.user_tokens(name)))
            pipe = client.pipeline(transaction=True)
            if digests:
                pipe.hdel(self.keys.api_tokens(), *digests)
            pipe.delete(self.keys.user_tokens(name))
            pipe.execute()
            return len(digests)

        return self.store.run(revoke)

    def user_for_token(self, token: object) -> User | None:
        """The user a personal API token belongs to (None: unknown, revoked, or its user is gone)."""
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        digest = self._token_hash(token)
        blob = self.store.run(lambda c: c.hget(self.keys.api_tokens(), digest))
        if not blob:
            return None
        # looked up by the token's hash: a guess reveals nothing of a stored token through timing
        return self.get(orjson.loads(blob)["user"])
