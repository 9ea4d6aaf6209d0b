"""One settings object for the whole app: defaults, then environment / `.env`, then what a caller passes."""
from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "DEFAULT_SECRET_KEY", "DEFAULT_ALERT_RULES", "secret_entropy_bits", "secret_weakness"]

DEFAULT_SECRET_KEY = "dev-insecure-change-me"
# What production demands of LULUPAY_SECRET_KEY, each LULUPAY_INGEST_TOKENS entry and
# LULUPAY_METRICS_TOKEN (docs/security.md): `secrets.token_urlsafe(32)` gives 43 characters, ~215 bits.
MIN_SECRET_CHARS = 32
MIN_SECRET_BITS = 128
MAKE_A_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
# The commented default rules shipped with the app (LULUPAY_ALERT_RULES).
DEFAULT_ALERT_RULES = Path(__file__).resolve().parent.parent / "monitoring" / "lulupay-alert-rules.yml"


class Settings(BaseSettings):
    """Every setting of a deployment; environment variables are prefixed `LULUPAY_`."""

    # hide_input_in_errors: a refused setting's error never quotes the values (secrets among them)
    model_config = SettingsConfigDict(env_prefix="LULUPAY_", env_file=".env", extra="ignore", populate_by_name=True,
                                      hide_input_in_errors=True)

    env: Literal["development", "production"] = "development"
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "LULUPAY_REDIS_URL")
    )
    # Sentinel (automatic failover): the sentinels' host:port list and the monitored master's name;
    # when set they win over REDIS_URL. Cluster mode: REDIS_URL=redis+cluster://host:port[,host:port].
    redis_sentinels: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_SENTINELS", "LULUPAY_REDIS_SENTINELS"),
        pattern=r"^[A-Za-z0-9_.:\[\]-]+(,[A-Za-z0-9_.:\[\]-]+)*$", max_length=2000,
    )
    redis_sentinel_master: str = Field(
        default="lulupay", validation_alias=AliasChoices("REDIS_SENTINEL_MASTER", "LULUPAY_REDIS_SENTINEL_MASTER"),
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
    )
    # Deadline of every store call (connect, command, script) in seconds: a hung store is an outage
    # after this long, like a dead one (docs/reliability.md).
    store_timeout_s: float = Field(default=2.0, gt=0, le=60)
    # What a 202 from ingest promises (docs/reliability.md): `aof` = the batch is in the store's
    # append-only file on disk (WAITAOF; a store without one answers 503), `memory` = in the store's
    # memory only; and how many replicas must have it too (0: none), waiting at most the deadline.
    ingest_durability: Literal["aof", "memory"] = "aof"
    ingest_replicas: int = Field(default=0, ge=0, le=10)
    prometheus_url: str | None = Field(
        default=None, validation_alias=AliasChoices("PROMETHEUS_URL", "LULUPAY_PROMETHEUS_URL")
    )
    data_dir: Path = Path("./data")
    ingest_tokens: str = ""
    retention_days: int = Field(default=90, ge=1, le=3650)
    secret_key: str = DEFAULT_SECRET_KEY
    key_prefix: str = Field(default="lp", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    # Builds with no event for this long are no longer counted as active (lost finish events).
    live_window_s: int = Field(default=6 * 3600, ge=60)
    # Events whose ts is further in the future than this are rejected (clock skew allowance).
    future_tolerance_s: int = Field(default=300, ge=0)
    max_batch_events: int = 5000
    max_body_bytes: int = 5 * 1024 * 1024
    host: str = "127.0.0.1"
    port: int = 8050
    build_time_target_s: float = 600.0
    # Build intelligence (docs/intelligence.md): the background forecaster (every web process runs one;
    # a queued forecast is computed by exactly one), how often it refreshes the all-partner
    # forecasts, and how many days of finished-build facts a process keeps in memory (~0.2 MiB a
    # day per 5,000 builds).
    forecaster_enabled: bool = True
    forecast_refresh_s: float = Field(default=300.0, ge=10, le=86400)
    # How long GET /api/v1/forecast waits for a forecast being computed before answering 202.
    forecast_wait_s: float = Field(default=8.0, ge=0, le=60)
    build_log_days: int = Field(default=200, ge=7, le=3650)
    # The forecaster's model fits and the build log's facts run in one child process per web process
    # at a lower CPU priority (nice), so they never hold the GIL a page callback waits for
    # (docs/intelligence.md, "Where the work runs"); false: on the forecaster's thread.
    background_process: bool = True
    background_process_nice: int = Field(default=10, ge=0, le=19)
    # Monthly price per partner by tier (revenue KPIs), e.g. LULUPAY_TIER_PRICES='{"pro": 249}'.
    tier_prices: dict[str, float] = Field(default_factory=lambda: {"free": 0.0, "basic": 49.0, "pro": 199.0,
                                                                   "enterprise": 999.0})
    currency: str = "USD"
    # The background collector (one leader per deployment): off in a web process when the Procfile's
    # `worker:` line runs it as its own process (it is harmless to leave on: only the leader writes).
    # `serve`: one terminal line per request (werkzeug's access log); gunicorn's is its own flag.
    access_log: bool = False
    # Log lines (docs/deployment.md, "Logs"): `text` for a terminal, `json` = one JSON object per
    # line (time, level, logger, message; request lines add request_id, route, method, status,
    # duration_ms) for Loki or Elasticsearch. With `json`, request lines are on unless
    # LULUPAY_ACCESS_LOG=false.
    log_format: Literal["text", "json"] = "text"
    collector_enabled: bool = True
    collector_interval_s: float = Field(default=5.0, ge=0.5, le=300)
    # Partners that get their own metric label (the first N seen by the deployment); the rest: "other".
    metrics_partner_cap: int = Field(default=100, ge=1, le=10000)
    # Real-time channel (/ws): per-connection queue (a client that falls this far behind is closed),
    # heartbeat, how long a connection may stay without subscribing, extra allowed browser origins.
    ws_queue_size: int = Field(default=256, ge=8, le=100_000)
    ws_ping_interval_s: float = Field(default=20.0, ge=1, le=600)
    ws_idle_s: float = Field(default=60.0, ge=1, le=3600)
    ws_allowed_origins: str = ""
    # Access (docs/security.md): `open` = no login, every visitor an admin, a banner on every page
    # (development only); `login` = users, sessions, tokens. Unset: open in development, login in
    # production.
    auth: Literal["open", "login"] | None = None
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Failed logins allowed per user name and per client address (flask-limiter syntax).
    login_rate_limit: str = Field(default="10/minute", pattern=r"^\d+ ?(/|per ) ?(second|minute|hour|day)$")
    # /metrics needs this bearer token when set (Prometheus' `authorization` credentials).
    metrics_token: str = ""
    # Content-Security-Policy frame-ancestors: who may embed the pages ('none'; e.g. 'self' or a
    # wall-screen origin).
    frame_ancestors: str = Field(default="'none'", pattern=r"^[A-Za-z0-9 '*:/._-]{1,500}$")
    # Optional OpenID Connect sign-in (all three set it up) and how its claims map to access.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_scopes: str = "openid email profile"
    oidc_role_claim: str = "lulupay_role"
    oidc_partners_claim: str = "lulupay_partners"
    # Role of an OIDC user whose token carries no role claim (unset: such a user is refused).
    oidc_default_role: Literal["admin", "staff", "partner_manager"] | None = None
    # Reverse proxies in front of the app whose X-Forwarded-For/-Proto/-Host are trusted (0: none;
    # the client address of the login limit is then the connection's).
    trusted_proxies: int = Field(default=0, ge=0, le=5)
    # Longest URL (path and query) a request may have, in bytes.
    max_url_bytes: int = Field(default=8192, ge=1024, le=65536)
    # Availability record and Capacity page (docs/capacity.md): the URL the collector's leader probes
    # every round (unset: /readyz on LULUPAY_HOST:LULUPAY_PORT, the address `serve` listens on), its
    # timeout, the objectives and the thresholds of the time-to-threshold projections.
    probe_url: str | None = Field(default=None, pattern=r"^https?://[^\s]{1,2000}$")
    probe_timeout_s: float = Field(default=2.0, gt=0, le=30)
    slo_availability: float = Field(default=0.999, gt=0, lt=1)
    slo_latency_p95_ms: float = Field(default=500.0, gt=0, le=600_000)
    capacity_cpu_percent: float = Field(default=85.0, gt=0, le=100)
    capacity_memory_percent: float = Field(default=90.0, gt=0, le=100)
    capacity_disk_percent: float = Field(default=90.0, gt=0, le=100)
    capacity_network_bytes_s: float = Field(default=104_857_600.0, gt=0)  # 100 MiB/s
    # Alerting (docs/alerting.md): the rules file (default: the one shipped in monitoring/; "off":
    # no engine), how often the collector's leader evaluates it, the address notifications link to,
    # and the delivery's HTTP timeout and how long a notification is retried.
    alert_rules: str = Field(default=str(DEFAULT_ALERT_RULES), max_length=4096)
    alert_interval_s: float = Field(default=15.0, ge=1, le=3600)
    alert_external_url: str | None = Field(default=None, pattern=r"^https?://[^\s]{1,2000}$")
    alert_delivery_timeout_s: float = Field(default=5.0, gt=0, le=60)
    alert_delivery_max_age_s: float = Field(default=86400.0, ge=60, le=7 * 86400)

    @property
    def store_url(self) -> str | None:
        """Where the store is: a redis+sentinel:// URL built from REDIS_SENTINELS (they win), else
        REDIS_URL (redis://, rediss://, unix://, redis+cluster://), else None (the embedded store)."""
        if self.redis_sentinels:
            return f"redis+sentinel://{self.redis_sentinels}/{self.redis_sentinel_master}"
        return self.redis_url

    @property
    def alert_rules_path(self) -> Path | None:
        """The rules file to load, or None with LULUPAY_ALERT_RULES=off (or empty)."""
        value = self.alert_rules.strip()
        return None if value.lower() in ("", "off", "none") else Path(value)

    @property
    def external_url(self) -> str:
        """The app's address in notifications: LULUPAY_ALERT_EXTERNAL_URL, else where `serve` listens."""
        if self.alert_external_url:
            return self.alert_external_url.rstrip("/")
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def probe_target(self) -> str:
        """The URL the collector probes: LULUPAY_PROBE_URL, else /readyz where this process serves."""
        if self.probe_url:
            return self.probe_url
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/readyz"

    @field_validator("ingest_tokens")
    @classmethod
    def _strip_tokens(cls, value: str) -> str:
        return ",".join(t.strip() for t in value.split(",") if t.strip())

    @field_validator("log_format", mode="before")
    @classmethod
    def _lowercase_log_format(cls, value):
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("frame_ancestors")
    @classmethod
    def _quote_keywords(cls, value: str) -> str:
        # 'none' and 'self' are keywords only in quotes (a .env file or a shell easily drops them)
        return " ".join(f"'{part}'" if part in ("none", "self") else part for part in value.split())

    @property
    def ingest_token_list(self) -> list[str]:
        """The configured ingest bearer tokens (empty: ingest is open, development only)."""
        return [t for t in self.ingest_tokens.split(",") if t]

    @property
    def auth_mode(self) -> str:
        """`open` or `login`, with the default of the environment applied."""
        return self.auth or ("login" if self.env == "production" else "open")

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id and self.oidc_client_secret)

    @property
    def retention_s(self) -> int:
        """Raw-event retention in seconds."""
        return self.retention_days * 86400

    @model_validator(mode="after")
    def _oidc_whole(self) -> "Settings":
        given = [bool(self.oidc_issuer), bool(self.oidc_client_id), bool(self.oidc_client_secret)]
        if any(given) and not all(given):
            raise ValueError("OpenID Connect needs LULUPAY_OIDC_ISSUER, LULUPAY_OIDC_CLIENT_ID and "
                             "LULUPAY_OIDC_CLIENT_SECRET together")
        return self

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> "Settings":
        if self.env == "production":
            problems = []
            if self.secret_key == DEFAULT_SECRET_KEY or not self.secret_key:
                problems.append(f"LULUPAY_SECRET_KEY must be set (e.g. {MAKE_A_SECRET})")
            elif weakness := secret_weakness(self.secret_key):
                problems.append(f"LULUPAY_SECRET_KEY is too weak: {weakness}")
            tokens = self.ingest_token_list
            if not tokens:
                problems.append("LULUPAY_INGEST_TOKENS must be set")
            for number, token in enumerate(tokens, 1):
                if weakness := secret_weakness(token):
                    problems.append(f"LULUPAY_INGEST_TOKENS entry {number} of {len(tokens)} is too weak: {weakness}")
            if self.metrics_token and (weakness := secret_weakness(self.metrics_token)):
                problems.append(f"LULUPAY_METRICS_TOKEN is too weak: {weakness}")
            if self.auth == "open":
                problems.append("LULUPAY_AUTH=open (no login) is for development only")
            if problems:
                raise ValueError("production mode refuses to start: " + "; ".join(problems))
        return self


def secret_weakness(secret: str) -> str | None:
    """Why `secret` is too weak for production (never quoting it), or None when it is long and
    unpredictable enough: at least MIN_SECRET_CHARS characters and MIN_SECRET_BITS estimated bits."""
    if len(secret) < MIN_SECRET_CHARS:
        return f"{len(secret)} characters, at least {MIN_SECRET_CHARS} needed (e.g. {MAKE_A_SECRET})"
    if _UUID.fullmatch(secret):
        # an identifier, not a secret; its 122 random bits would also pass or fail by chance below
        return f"a UUID has at most 122 random bits, at least {MIN_SECRET_BITS} needed (e.g. {MAKE_A_SECRET})"
    bits = secret_entropy_bits(secret)
    if bits < MIN_SECRET_BITS:
        return (f"too predictable, about {bits:.0f} bits of entropy estimated, at least {MIN_SECRET_BITS} "
                f"needed (e.g. {MAKE_A_SECRET})")
    return None


_UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.IGNORECASE)
# Words people put in secrets; each counts for nothing in the estimate.
_COMMON_WORDS = re.compile("|".join(("password", "passwd", "secret", "changeme", "change-me", "letmein",
                                     "qwerty", "azerty", "admin", "default", "example", "insecure",
                                     "lulupay", "token")), re.IGNORECASE)


def secret_entropy_bits(secret: str) -> float:
    """A pessimistic estimate of a secret's entropy in bits: common words count for nothing, a run
    of repeated or consecutive characters ("aaaa", "abcd", "4321") for its first two, a repeated
    block once; what is left counts its Shannon entropy per character times its length."""
    core = _one_period(_without_runs(_COMMON_WORDS.sub("", secret)))
    if not core:
        return 0.0
    counts = Counter(core)
    bits_per_char = sum(n / len(core) * math.log2(len(core) / n) for n in counts.values())
    return bits_per_char * len(core)


def _without_runs(text: str) -> str:
    """`text` without the characters that continue a run of equal steps of -1, 0 or +1."""
    kept = list(text[:2])
    for i in range(2, len(text)):
        step = ord(text[i]) - ord(text[i - 1])
        if not (abs(step) <= 1 and step == ord(text[i - 1]) - ord(text[i - 2])):
            kept.append(text[i])
    return "".join(kept)


def _one_period(text: str) -> str:
    """The block that `text` repeats ("abcabcab" → "abc"), or `text` when it repeats none."""
    for period in range(1, len(text) // 2 + 1):
        if text[period:] == text[:-period]:
            return text[:period]
    return text
