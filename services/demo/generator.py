"""Realistic demo data: a seeded build history generator and a live event simulator."""
from __future__ import annotations

import heapq
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from services.vocabulary import ASSET_FORMATS, ASSET_TYPES, BUILD_TYPES, DENSITIES, STAGES, TIERS

__all__ = ["generate_history", "partner_catalogue", "Simulator", "DEFAULT_SEED", "QUOTA_BY_TIER", "STAGES"]

log = logging.getLogger(__name__)

DEFAULT_SEED = 42
DAY_S = 86400.0
QUOTA_BY_TIER = {"free": 100, "basic": 1000, "pro": 5000, "enterprise": 50000}
FORMATS = ASSET_FORMATS

_QUOTAS = np.array([QUOTA_BY_TIER[t] for t in TIERS])
_TIER_SHARE = (0.4, 0.3, 0.2, 0.1)                      # many free/basic partners, few enterprise
_GROWTH_END = 1.85                                        # volume at the end of history vs the start
_WEEKEND_FACTOR = 0.35
_LEAD_IN_S = 60.0                                         # slack before the first build for slow ingest
_LIVE_TIME_SCALE = 0.18                                   # live builds run ~5x faster than real ones
_MAX_CATCHUP_S = 300.0                                    # the simulator never back-fills more than this

# build type mix per tier (debug, release, store), cumulative
_TYPE_CUM = np.cumsum([[0.70, 0.25, 0.05], [0.60, 0.30, 0.10], [0.50, 0.32, 0.18], [0.42, 0.35, 0.23]], axis=1)
_ASSETS_PER_BUILD = np.array([0.6, 1.8, 2.6])            # Poisson mean per build type
# median stage duration in seconds (rows: debug, release, store); compilation dominates
_STAGE_MEDIAN_S = np.array([[5.0, 14, 65, 9, 2.5, 5], [12, 22, 210, 28, 7, 18], [18, 26, 290, 42, 11, 55]])
_STAGE_SIGMA = np.array([0.35, 0.5, 0.4, 0.3, 0.3, 0.45])
_STAGE_FAIL_P = np.array([0.009, 0.007, 0.017, 0.003, 0.006, 0.005])
_TYPE_FAIL_MULT = np.array([[0.8, 0.9, 0.9, 0.7, 0.2, 0.5], [1.0] * 6, [1.3, 1.0, 1.2, 1.3, 1.6, 1.7]])
_CANCEL_P = 0.015

_PREFIXES = (
    "acme", "zenith", "northwind", "bluepeak", "crescent", "falcon", "meridian", "oasis", "pinnacle", "sahara",
    "harbor", "summit", "lumen", "cedar", "atlas", "orbit", "nova", "silverline", "redwood", "emerald",
    "golden-gate", "horizon", "keystone", "lotus", "monarch", "nimbus", "opal", "quantum", "riverstone",
    "sterling", "trident", "unity", "vertex", "willow", "apex", "beacon", "coral", "delta", "evergreen",
    "fortune", "granite", "ivory", "juniper", "kestrel", "marina", "pearl", "sapphire", "tidewater",
)
_SUFFIXES = (("bank", "Bank"), ("pay", "Pay"), ("credit", "Credit Union"), ("wallet", "Wallet"),
             ("finance", "Finance"), ("money", "Money"), ("capital", "Capital"), ("remit", "Remit"),
             ("exchange", "Exchange"), ("cash", "Cash"), ("lending", "Lending"), ("payments", "Payments"))


def partner_catalogue(partners: int, seed: int) -> list[dict]:
    """The partners of a demo (id, name, starting tier, quota, status), deterministic per seed."""
    if partners < 1:
        raise ValueError("partners must be at least 1")
    rng = np.random.default_rng([seed, 0])
    prefixes = [_PREFIXES[i] for i in rng.permutation(len(_PREFIXES))]
    counts = [int(partners * s) for s in _TIER_SHARE]
    counts[0] += partners - sum(counts)
    tiers = [t for t, c in zip(TIERS, counts) for _ in range(c)]
    tiers = [tiers[i] for i in rng.permutation(partners)]
    out, used = [], set()
    for i in range(partners):
        prefix = prefixes[i % len(prefixes)]
        slug, label = _SUFFIXES[int(rng.integers(len(_SUFFIXES)))]
        pid, n = f"{prefix}-{slug}", 1
        while pid in used:
            n += 1
            pid = f"{prefix}-{slug}-{n}"
        used.add(pid)
        name = " ".join(w.capitalize() for w in prefix.split("-")) + f" {label}" + (f" {n}" if n > 1 else "")
        out.append({"partner_id": pid, "name": name, "tier": tiers[i],
                    "monthly_build_quota": QUOTA_BY_TIER[tiers[i]], "status": "active"})
    return out


@dataclass(frozen=True)
class _Partners:
    """Hidden behaviour of the catalogue's partners (parallel arrays, one entry per partner)."""

    ids: list[str]
    names: list[str]
    tier0: np.ndarray        # starting tier index
    util: np.ndarray         # share of the quota a partner tends to use
    tz_h: np.ndarray         # office-hours offset from UTC, hours
    trend: np.ndarray        # log growth of the partner's share over the history
    version_lag: np.ndarray  # app releases the partner lags behind the latest
    fail_mult: np.ndarray    # (P, 6) per-stage failure multipliers


def _partners(partners: int, seed: int) -> _Partners:
    cat = partner_catalogue(partners, seed)
    rng = np.random.default_rng([seed, 1])
    tier0 = np.array([TIERS.index(p["tier"]) for p in cat])
    util = rng.beta(*np.array([(3.0, 2.5), (2.5, 2.5), (3.0, 2.5), (7.0, 3.0)])[tier0].T)
    for tier in range(3):  # one heavy user per paid tier below enterprise and on free: near/over quota
        members = np.flatnonzero(tier0 == tier)
        if members.size:
            util[members[np.argmax(util[members])]] = rng.uniform(0.95, 1.15)
    fail_mult = np.exp(rng.normal(0.0, 0.3, size=(partners, 1))) * np.ones((1, 6))
    troubled = rng.choice(partners, size=min(3, partners), replace=False)
    fail_mult[troubled[:2], 0] *= 3.0    # partners uploading poor assets
    fail_mult[troubled[2:], 2] *= 2.5    # a partner with a fragile customisation
    return _Partners(
        ids=[p["partner_id"] for p in cat], names=[p["name"] for p in cat], tier0=tier0, util=util,
        tz_h=rng.choice([-3, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4], size=partners).astype(float),
        trend=rng.normal(0.1, 0.4, size=partners), version_lag=rng.choice([0, 0, 1, 1, 2], size=partners),
        fail_mult=fail_mult,
    )


@dataclass(frozen=True)
class _Change:
    day: int
    partner: int
    tier: int
    status: str
    kind: str  # upgrade, downgrade, churn, suspend, reactivate; fade, silent (activity only, no record change)


def _schedule(ps: _Partners, days: int) -> list[_Change]:
    """Subscription changes at fixed fractions of the history; which partners change depends only on the seed."""
    picked: set[int] = set()

    def pick(tier: int, largest: bool) -> int | None:
        cands = [i for i in np.flatnonzero(ps.tier0 == tier) if i not in picked]
        if not cands:
            return None
        best = max(cands, key=lambda i: ps.util[i] if largest else -ps.util[i])
        picked.add(best)
        return int(best)

    def day(frac: float) -> int:
        return min(days - 1, int(frac * days))

    out: list[_Change] = []
    for frac, tier in ((0.22, 0), (0.48, 1), (0.71, 2)):
        p = pick(tier, largest=True)
        if p is not None:
            out.append(_Change(day(frac), p, tier + 1, "active", "upgrade"))
    for frac, tier in ((0.37, 2), (0.83, 1)):
        p = pick(tier, largest=False)
        if p is not None:
            out.append(_Change(day(frac), p, tier - 1, "active", "downgrade"))
    n_churn = min(3, max(1, len(ps.ids) // 13))
    for frac, tier in ((0.30, 0), (0.58, 1), (0.90, 0))[:n_churn]:
        p = pick(tier, largest=False)
        if p is not None:
            out.append(_Change(day(frac), p, tier, "churned", "churn"))
    # still active, but drifting away: activity fading over the last fifth of the history, and a
    # partner that stopped building nine days before the end (the churn-risk list's story)
    p = pick(1, largest=True)
    if p is not None and days >= 10:
        out.append(_Change(day(0.80), p, 1, "active", "fade"))
    p = pick(2, largest=False)
    if p is not None and days >= 20:
        out.append(_Change(days - 9, p, 2, "active", "silent"))
    p = pick(1, largest=False)
    if p is not None:
        start = day(0.52)
        out.append(_Change(start, p, 1, "suspended", "suspend"))
        back = start + max(1, round(0.06 * days))
        if back < days:
            out.append(_Change(back, p, 1, "active", "reactivate"))
    return sorted(out, key=lambda c: (c.day, c.partner))


def _daily_weights(ps: _Partners, changes: list[_Change], days: int) -> tuple[np.ndarray, np.ndarray]:
    """(days, P) build-share weights and tiers in force each day."""
    n = len(ps.ids)
    frac = (np.arange(days) + 0.5) / days
    weight = (_QUOTAS[ps.tier0] * ps.util)[None, :] * np.exp(np.outer(frac - 0.5, ps.trend))
    tiers = np.tile(ps.tier0, (days, 1))
    ramp_days = max(1, round(0.2 * days))
    for c in changes:
        if c.kind in ("upgrade", "downgrade"):
            weight[c.day + 1:, c.partner] *= 1.6 if c.kind == "upgrade" else 0.7
            tiers[c.day + 1:, c.partner] = c.tier
        elif c.kind == "churn":  # fading activity, then nothing from the churn day on
            lo = max(0, c.day - ramp_days)
            weight[lo:c.day, c.partner] *= np.linspace(1.0, 0.15, c.day - lo)
            weight[c.day:, c.partner] = 0.0
        elif c.kind == "fade":
            weight[c.day:, c.partner] *= np.linspace(1.0, 0.1, days - c.day)
        elif c.kind == "silent":
            weight[c.day:, c.partner] = 0.0
        elif c.kind == "suspend":
            back = next((x.day for x in changes if x.kind == "reactivate" and x.partner == c.partner), days)
            weight[c.day:back + 1, c.partner] = 0.0
    if not weight.any(axis=1).all():
        weight[~weight.any(axis=1)] = 1.0 / n
    return weight, tiers


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _rhythm(t_local: np.ndarray) -> np.ndarray:
    """Relative build-start intensity at local epoch seconds: office hours, quiet nights, slow weekends."""
    h = (t_local % DAY_S) / 3600.0
    weekday = (np.floor(t_local / DAY_S).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    lunch_dip = 1 - 0.12 * np.exp(-0.5 * ((h - 12.5) / 0.6) ** 2)
    office = _sigmoid((h - 7.8) / 0.7) * _sigmoid((18.3 - h) / 0.9) * lunch_dip
    level = (0.08 + 0.92 * office) * np.where(weekday >= 5, _WEEKEND_FACTOR, 1.0)
    return level + 0.15 * np.exp(-0.5 * ((h - 2.0) / 0.25) ** 2)  # scheduled nightly builds


@dataclass(frozen=True)
class _Incidents:
    """Windows of elevated failures (an infra outage, a Maven outage, one partner's expired
    certificate) and a week in which one stage regresses (a dependency cache misconfigured)."""

    outage: tuple[float, float] = (0.0, 0.0)
    maven: tuple[float, float] = (0.0, 0.0)
    cert: tuple[float, float] = (0.0, 0.0)
    cert_partner: int = -1
    slow: tuple[float, float] = (0.0, 0.0)
    slow_stage: int = 1  # dependency_resolution
    slow_factor: float = 10.0  # every dependency downloaded again: a cache that stopped working

    def slowdown(self, dur: np.ndarray, start_ts: np.ndarray) -> None:
        """Stretch the regressed stage's durations in place for builds started in its week."""
        in_slow = (start_ts >= self.slow[0]) & (start_ts < self.slow[1])
        dur[in_slow, self.slow_stage] *= self.slow_factor

    def apply(self, p: np.ndarray, start_ts: np.ndarray, partner_idx: np.ndarray, build_type: np.ndarray) -> dict:
        """Raise failure probabilities in place; return the per-build incident flags."""
        in_outage = (start_ts >= self.outage[0]) & (start_ts < self.outage[1])
        in_maven = (start_ts >= self.maven[0]) & (start_ts < self.maven[1])
        in_cert = ((partner_idx == self.cert_partner) & (build_type > 0)
                   & (start_ts >= self.cert[0]) & (start_ts < self.cert[1]))
        p[in_outage, 5] += 0.30
        p[in_maven, 1] += 0.25
        p[in_cert, 4] = 0.97
        return {"maven": in_maven, "cert": in_cert, "cert_date": time.strftime(
            "%a %b %d %H:%M:%S UTC %Y", time.gmtime(self.cert[0]))}


def _first_utc_hour_at_or_after(ts: float, hour: float) -> float:
    return ts + (hour * 3600.0 - ts % DAY_S) % DAY_S


def _incidents(ps: _Partners, changes: list[_Change], start: float, days: int) -> _Incidents:
    def weekday_at(frac: float, hour: float) -> float:
        t = _first_utc_hour_at_or_after(start + int(frac * days) * DAY_S, hour)
        while (int(t // DAY_S) + 3) % 7 >= 5 and t - DAY_S >= start:
            t -= DAY_S
        return t

    outage = weekday_at(0.90, 13.0)
    maven = weekday_at(0.15, 10.0)
    cert = _first_utc_hour_at_or_after(start + int(0.80 * days) * DAY_S, 0.0)
    changed = {c.partner for c in changes}
    pro = [i for i in np.flatnonzero(ps.tier0 >= 2) if i not in changed]
    cert_partner = int(max(pro, key=lambda i: ps.util[i])) if pro else -1
    slow = _first_utc_hour_at_or_after(start + int(0.72 * days) * DAY_S, 6.0)
    return _Incidents((outage, outage + 3.5 * 3600), (maven, maven + 2 * 3600), (cert, cert + 18 * 3600), cert_partner,
                      (slow, slow + 7 * DAY_S))


def _failure(rnd: random.Random, stage: int, build_type: int, pid: str, flags: dict,
             b: int) -> tuple[str, str, float | None]:
    """(error_category, error_message, fixed duration_s or None) for build `b` failing at `stage`."""
    variant = "Debug" if build_type == 0 else "Release"

    def task(name: str) -> str:
        return f"Execution failed for task ':app:{name.format(variant)}'. > "

    r = rnd.random()
    if stage == 0:
        if r < 0.55:
            kind, dens = rnd.choice((("icon", "xxxhdpi"), ("icon", "xxhdpi"), ("logo", "xhdpi")))
            size = rnd.choice((48, 72, 96, 128, 192))
            return "asset", f"Image too small: {kind} {size}x{size} below minimum 512x512 ({dens})", None
        if r < 0.80:
            name = rnd.choice(("splash", "logo", "banner", "screenshot_1", "screenshot_2"))
            return "asset", f"Unsupported image format: {name}.heic (image/heic); expected png, webp, jpg or svg", None
        if r < 0.95:
            dens = rnd.choice(DENSITIES[:5])
            return "asset", f"Splash image splash_{dens}.png has an alpha channel; splash screens must be opaque", None
        line = rnd.randint(3, 90)
        return "asset", f"SVG parse error in logo.svg: unsupported element <foreignObject> at line {line}", None
    if stage == 1:
        if flags["maven"][b] and r < 0.85:
            pom = rnd.choice(("com/squareup/okhttp3/okhttp/4.12.0/okhttp-4.12.0.pom",
                              "androidx/core/core-ktx/1.13.1/core-ktx-1.13.1.pom",
                              "com/google/code/gson/gson/2.11.0/gson-2.11.0.pom"))
            return "dependency", (f"Could not GET 'https://repo.maven.apache.org/maven2/{pom}'. "
                                  "Received status code 502 from server: Bad Gateway"), None
        if r < 0.55:
            dep = rnd.choice(("com.google.firebase:firebase-bom:33.1.0", "com.google.firebase:firebase-bom:33.1.0",
                              "androidx.compose:compose-bom:2024.06.00", "com.squareup.okhttp3:okhttp:5.0.0-alpha.14"))
            return "dependency", f"Failed to resolve: {dep}", None
        if r < 0.85:
            ver = f"2.{rnd.randint(3, 9)}.{rnd.randint(0, 4)}"
            return "dependency", (f"Could not resolve com.lulupay:partner-sdk:{ver}. Required by: project :app "
                                  f"> Could not find com.lulupay:partner-sdk:{ver}."), None
        return "dependency", ("Duplicate class kotlin.collections.jdk8.CollectionsJDK8Kt found in modules "
                              "kotlin-stdlib-1.8.22 and kotlin-stdlib-jdk8-1.6.21"), None
    if stage == 2:
        if r < 0.03:
            return "timeout", "Build step 'compilation' exceeded the 1800s timeout and was killed", 1800 + rnd.random()
        if r < 0.55:
            src = rnd.choice(("MainActivity", "MainActivity", "PaymentFragment", "BrandingConfig", "WalletViewModel"))
            path = f"/src/main/java/com/lulupay/partner/{pid.replace('-', '_')}/{src}.kt:{rnd.randint(20, 400)}"
            return "gradle", task("compile{}Kotlin") + f"Compilation error in {path}", None
        if r < 0.75:
            lib = rnd.choice(("com.partner.sdk:analytics:3.2.0", "com.lulupay:partner-sdk:2.8.1"))
            merger = f"uses-sdk:minSdkVersion 21 cannot be smaller than version 23 declared in library [{lib}]"
            return "gradle", task("process{}Manifest") + f"Manifest merger failed : {merger}", None
        if r < 0.90:
            return "gradle", task("merge{}Resources") + ("Android resource compilation failed: res/values/strings.xml:"
                                                         f"{rnd.randint(5, 300)}: error: unescaped apostrophe"), None
        if r < 0.97:
            return "gradle", task("kapt{}Kotlin") + "java.lang.OutOfMemoryError: Java heap space", None
        return "gradle", task("lintVital{}") + "Lint found fatal errors while assembling a release target.", None
    if stage == 3:
        if r < 0.65:
            methods = rnd.randint(65537, 71000)
            return "gradle", task("mergeDex{}") + (f"Cannot fit requested classes in a single dex file "
                                                   f"(# methods: {methods} > 65536)"), None
        return "infra", task("package{}") + ("A failure occurred while executing PackageAndroidArtifact "
                                             "> java.io.IOException: No space left on device"), None
    if stage == 4:
        if flags["cert"][b]:
            return "signing", (f"apksigner: java.security.cert.CertificateExpiredException: NotAfter: "
                               f"{flags['cert_date']} (alias '{pid}-release')"), None
        if r < 0.55:
            return "signing", "Keystore was tampered with, or password was incorrect", None
        if r < 0.85:
            return "signing", (f'Failed to read key {pid}-release from store "/secrets/{pid}/release.jks": '
                               "Cannot recover key"), None
        return "signing", f"Keystore file '/secrets/{pid}/upload.jks' not found for signing config 'release'.", None
    if build_type == 0:  # debug builds go to the internal artifact store
        if r < 0.4:
            return "timeout", "Upload to artifacts.lulupay.internal timed out after 120s", 120 + rnd.random()
        return "infra", "Artifact upload failed: 503 Service Unavailable from artifacts.lulupay.internal", None
    if r < 0.45:
        return "timeout", "Upload to Play Console timed out after 300s", 300 + rnd.random()
    if r < 0.75:
        return "infra", "Artifact upload failed: 503 Service Unavailable from artifacts.lulupay.internal", None
    if r < 0.92:
        artefact = f"app-{BUILD_TYPES[build_type]}.aab"
        return "infra", f"Connection reset by peer while uploading {artefact} (attempt 3/3)", None
    return "infra", "Google Play Developer API returned 500: Internal error encountered.", None


def _assets(rng: np.random.Generator, m: int) -> dict[str, np.ndarray]:
    """Attributes of `m` processed assets as arrays."""
    kind = rng.choice(5, size=m, p=[0.30, 0.20, 0.17, 0.10, 0.23])
    fmt_cum = np.cumsum([[0.55, 0.33, 0, 0.12], [0.45, 0.40, 0.15, 0], [0.35, 0.20, 0, 0.45],
                         [0.15, 0.35, 0.50, 0], [0.50, 0.15, 0.35, 0]], axis=1)
    fmt = np.minimum((rng.random(m)[:, None] > fmt_cum[kind]).sum(1), 3)
    dens = rng.choice(5, size=m, p=[0.08, 0.14, 0.24, 0.30, 0.24])
    dens = np.where((fmt == 3) | (kind >= 3), 5, dens)
    size_scale = np.array([0.25, 0.5, 0.8, 1.3, 2.0, 1.0])[dens] * np.array([1.0, 1.0, 0.7, 0.3])[fmt]
    original = np.array([24e3, 380e3, 48e3, 520e3, 1.1e6])[kind] * size_scale * np.exp(rng.normal(0, 0.5, m))
    original = np.maximum(original, 512).astype(np.int64)
    mean = np.array([0.40, 0.675, 0.50, 0.175])[fmt]
    lo, hi = np.array([0.30, 0.60, 0.40, 0.10])[fmt], np.array([0.50, 0.75, 0.60, 0.25])[fmt]
    ratio = np.clip(rng.normal(mean, 0.045), lo, hi)
    output = np.minimum(np.floor(original * (1 - ratio)).astype(np.int64), original - 1)
    q_mean, q_sd = np.array([95.0, 88, 80, 99.0])[fmt], np.array([1.5, 3, 4, 0.3])[fmt]
    quality = rng.normal(q_mean, q_sd) - 20 * (ratio - mean)
    quality = np.clip(quality, np.array([90.0, 78, 70, 98])[fmt], np.array([99.0, 96, 92, 99.9])[fmt])
    speed = np.where(fmt == 3, 0.3, 1.0)
    duration = np.clip(0.04 + original / 1e6 * 0.9 * speed * np.exp(rng.normal(0, 0.4, m)), 0.05, 3.0)
    return {"kind": kind, "fmt": fmt, "dens": dens, "original": original, "output": output,
            "quality": np.round(quality, 1), "duration": np.round(duration, 3)}


def _obj(values) -> np.ndarray:
    """An object array of strings, for gathering labels by index without Python loops."""
    return np.array(values, dtype=object)


def _app_versions(start_ts: np.ndarray, lag: np.ndarray) -> list[str]:
    """App version of each build: a release every two weeks, partners lagging a release or two."""
    fortnight = 14 * DAY_S
    release = np.floor(start_ts / fortnight).astype(np.int64) - lag
    patch = np.floor((start_ts % fortnight) / (3.5 * DAY_S)).astype(np.int64)
    codes, inverse = np.unique(release * 4 + patch, return_inverse=True)  # format each version once
    labels = _obj([f"{max(1, 2 + (c // 4 - 1400) // 26)}.{(c // 4 - 1400) % 26}.{c % 4}" for c in codes.tolist()])
    return labels[inverse.ravel()].tolist()


def _build_events(rng: np.random.Generator, rnd: random.Random, *, start_ts: np.ndarray, partner_idx: np.ndarray,
                  tiers: np.ndarray, build_ids: list[str], id_prefixes: list[str], ps: _Partners,
                  incidents: _Incidents, time_scale: float = 1.0) -> tuple[list[dict], np.ndarray]:
    """All events of the given builds (started, stages, assets, finished) and their timestamps."""
    n = len(start_ts)
    bt = (rng.random(n)[:, None] > _TYPE_CUM[tiers]).sum(1)
    n_assets = rng.poisson(_ASSETS_PER_BUILD[bt])
    a_build = np.repeat(np.arange(n), n_assets)
    assets = _assets(rng, len(a_build))
    dur = _STAGE_MEDIAN_S[bt] * np.exp(rng.standard_normal((n, 6)) * _STAGE_SIGMA)
    dur[:, 0] += np.bincount(a_build, weights=assets["duration"], minlength=n)
    incidents.slowdown(dur, start_ts)

    p = _STAGE_FAIL_P * _TYPE_FAIL_MULT[bt] * ps.fail_mult[partner_idx]
    flags = incidents.apply(p, start_ts, partner_idx, bt)
    reach = np.hstack([np.ones((n, 1)), np.cumprod(1 - p, axis=1)[:, :-1]])
    cum = np.cumsum(p * reach, axis=1)
    u = rng.random(n)
    failed = u < cum[:, -1]
    fail_stage = np.where(failed, (u[:, None] >= cum).sum(1), -1)
    cancelled = ~failed & (rng.random(n) < _CANCEL_P)
    cancel_stage = rng.choice(6, size=n, p=_STAGE_MEDIAN_S[1] / _STAGE_MEDIAN_S[1].sum())
    done = np.where(failed, fail_stage + 1, np.where(cancelled, cancel_stage, 6))  # stage events emitted

    fail_rows = np.flatnonzero(failed)
    fail_info = {}
    for b, k in zip(fail_rows.tolist(), fail_stage[fail_rows].tolist()):
        category, message, fixed_s = _failure(rnd, k, int(bt[b]), ps.ids[partner_idx[b]], flags, b)
        fail_info[b] = (STAGES[k], category, message)
        dur[b, k] = fixed_s / time_scale if fixed_s is not None else dur[b, k] * rnd.uniform(0.15, 0.9)
    dur = np.round(dur * time_scale, 3)

    gaps = rng.uniform(0.05, 0.2, (n, 6)) * time_scale
    queue = rng.uniform(0.3, 1.2, n) * time_scale
    ends = start_ts[:, None] + queue[:, None] + np.cumsum(dur + gaps, axis=1)
    rows = np.arange(n)
    last_end = np.where(done > 0, ends[rows, np.maximum(done - 1, 0)], start_ts + queue)
    partial = gaps[rows, cancel_stage] + rng.random(n) * dur[rows, cancel_stage]
    finish_ts = np.round(np.where(cancelled, last_end + partial, last_end + 0.05 * time_scale), 3)
    ends = np.round(ends, 3)
    duration = np.round(finish_ts - start_ts, 3)

    pid_arr = np.array(ps.ids, dtype=object)[partner_idx]
    pre_arr, bid_arr = np.array(id_prefixes, dtype=object), np.array(build_ids, dtype=object)
    pids, types = pid_arr.tolist(), _obj(BUILD_TYPES)[bt].tolist()
    events = [{"id": pre + "-st", "type": "build.started", "ts": t, "partner_id": pid, "build_id": bid,
               "build_type": typ, "app_version": ver}
              for pre, t, pid, bid, typ, ver in zip(id_prefixes, start_ts.tolist(), pids, build_ids, types,
                                                    _app_versions(start_ts, ps.version_lag[partner_idx]))]
    ts_parts = [start_ts]
    for k, stage in enumerate(STAGES):  # one column at a time: constant stage name and id suffix
        rows = np.flatnonzero(done > k)
        suffix, status = f"-s{k}", _obj(("success", "failed"))[(fail_stage[rows] == k).astype(np.intp)]
        events += [{"id": pre + suffix, "type": "build.stage", "ts": t, "partner_id": pid, "build_id": bid,
                    "stage": stage, "status": st, "duration_s": d}
                   for pre, t, pid, bid, st, d in zip(pre_arr[rows].tolist(), ends[rows, k].tolist(),
                                                      pid_arr[rows].tolist(), bid_arr[rows].tolist(),
                                                      status.tolist(), dur[rows, k].tolist())]
        ts_parts.append(ends[rows, k])
    finish_status = _obj(("success", "failed", "cancelled"))[np.where(failed, 1, np.where(cancelled, 2, 0))]
    finished = [{"id": pre + "-f", "type": "build.finished", "ts": t, "partner_id": pid, "build_id": bid,
                 "build_type": typ, "status": st, "duration_s": d}
                for pre, t, pid, bid, typ, st, d in zip(id_prefixes, finish_ts.tolist(), pids, build_ids, types,
                                                        finish_status.tolist(), duration.tolist())]
    for b, (stage, category, message) in fail_info.items():
        finished[b].update(failed_stage=stage, error_category=category, error_message=message)
    events += finished
    ts_parts.append(finish_ts)

    stage0_start = start_ts + queue + gaps[:, 0]
    a_ts = np.round(stage0_start[a_build] + rng.random(len(a_build)) * dur[a_build, 0] * 0.98, 3)
    keep = np.flatnonzero(a_ts < finish_ts[a_build])
    a_index = np.arange(len(a_build)) - np.repeat(np.cumsum(n_assets) - n_assets, n_assets)
    a_rows = a_build[keep]
    a_ids = (pre_arr[a_rows] + _obj([f"-a{j}" for j in range(int(a_index.max(initial=0)) + 1)])[a_index[keep]])
    events += [{"id": i, "type": "asset.processed", "ts": t, "partner_id": pid, "asset_type": k, "format": f,
                "density": d, "original_bytes": o, "output_bytes": out, "quality_score": q, "duration_s": s}
               for i, t, pid, k, f, d, o, out, q, s in zip(
                   a_ids.tolist(), a_ts[keep].tolist(), pid_arr[a_rows].tolist(),
                   _obj(ASSET_TYPES)[assets["kind"][keep]].tolist(), _obj(FORMATS)[assets["fmt"][keep]].tolist(),
                   _obj(DENSITIES)[assets["dens"][keep]].tolist(), assets["original"][keep].tolist(),
                   assets["output"][keep].tolist(), assets["quality"][keep].tolist(),
                   assets["duration"][keep].tolist())]
    ts_parts.append(a_ts[keep])
    return events, np.concatenate(ts_parts)


def _upsert(ps: _Partners, seed: int, partner: int, n: int, ts: float, tier: int, status: str) -> dict:
    pid = ps.ids[partner]
    return {"id": f"h{seed}-p-{pid}-{n}", "type": "partner.upserted", "ts": ts, "partner_id": pid,
            "name": ps.names[partner], "tier": TIERS[tier], "monthly_build_quota": int(_QUOTAS[tier]), "status": status}


def _partner_events(ps: _Partners, changes: list[_Change], seed: int, start: float,
                    rng: np.random.Generator) -> list[dict]:
    """Initial partner records at the start, then each subscription change during office hours."""
    events = [_upsert(ps, seed, i, 0, start + _LEAD_IN_S / 2, int(t), "active") for i, t in enumerate(ps.tier0)]
    seen: dict[int, int] = {}
    for c in changes:
        if c.kind in ("fade", "silent"):  # activity only: the record does not change
            continue
        window_start = start + c.day * DAY_S
        hours = [h for h in range(9, 18) if (h * 3600 - window_start % DAY_S) % DAY_S >= 3600]
        ts = _first_utc_hour_at_or_after(window_start, float(rng.choice(hours))) + float(rng.uniform(0, 3000))
        seen[c.partner] = seen.get(c.partner, 0) + 1
        events.append(_upsert(ps, seed, c.partner, seen[c.partner], round(ts, 3), c.tier, c.status))
    return events


def generate_history(*, days: int = 90, partners: int = 40, builds_per_day: int = 5000,
                     now: float, seed: int = 42, batch_size: int = 1000,
                     future: list[dict] | None = None) -> Iterator[list[dict]]:
    """Yield batches (lists of event dicts) of realistic history covering [now - days*86400, now), chronological-ish.
    The builds still running at `now` have events after it: they are appended to `future` (in ts
    order) when the history is exhausted, for the simulator to send when their time comes."""
    if days < 1 or partners < 1 or builds_per_day < 0 or batch_size < 1:
        raise ValueError("days, partners and batch_size must be positive, builds_per_day non-negative")
    return _history(days, partners, builds_per_day, float(now), seed, batch_size, future)


def _history(days: int, partners: int, builds_per_day: int, now: float, seed: int,
             batch_size: int, future: list[dict] | None) -> Iterator[list[dict]]:
    """Day by day: draw build starts, expand them into events, release those before the day's end in ts order."""
    rng = np.random.default_rng([seed, 3])
    rnd = random.Random(seed)
    start = now - days * DAY_S
    ps = _partners(partners, seed)
    changes = _schedule(ps, days)
    weights, tiers = _daily_weights(ps, changes, days)
    incidents = _incidents(ps, changes, start, days)
    upserts = _partner_events(ps, changes, seed, start, rng)
    minute = np.arange(1440) * 60.0
    tz_h, tz_of_partner = np.unique(ps.tz_h, return_inverse=True)

    def intensity(d: int) -> np.ndarray:  # (1440, P) expected build starts per minute and partner
        local = start + d * DAY_S + minute[:, None] + 30.0 + tz_h[None, :] * 3600.0
        r = _rhythm(local)[:, tz_of_partner.ravel()] * (weights[d] / weights[d].sum())
        if d == 0:
            r[0] = 0.0  # the lead-in minute: partner records first
        return r

    frac = (np.arange(days) + 0.5) / days
    day_volume = np.array([intensity(d).sum() for d in range(days)])
    day_volume *= (1 + (_GROWTH_END - 1) * frac) * np.exp(rng.normal(0, 0.05, days))
    day_counts = rng.multinomial(builds_per_day * days, day_volume / day_volume.sum())

    pending: list[dict] = []
    pending_ts = np.empty(0)
    out: list[dict] = []
    next_build = 0
    for d in range(days):
        window_end = start + (d + 1) * DAY_S
        r = intensity(d)
        counts = rng.multinomial(int(day_counts[d]), (r / r.sum()).ravel())
        cell = np.repeat(np.arange(counts.size), counts)
        b_ts = start + d * DAY_S + (cell // partners) * 60.0 + rng.random(cell.size) * 60.0
        order = np.argsort(b_ts, kind="stable")
        b_ts, b_partner = np.round(b_ts[order], 3), (cell % partners)[order]
        build_ids = [f"b{seed}-{i:07d}" for i in range(next_build, next_build + cell.size)]
        next_build += cell.size
        day_upserts = [e for e in upserts if int((e["ts"] - start) // DAY_S) == d]
        events, ts = _build_events(rng, rnd, start_ts=b_ts, partner_idx=b_partner, tiers=tiers[d][b_partner],
                                   build_ids=build_ids, id_prefixes=[f"h-{b}" for b in build_ids], ps=ps,
                                   incidents=incidents)
        events = day_upserts + pending + events
        ts = np.concatenate([[e["ts"] for e in day_upserts], pending_ts, ts])
        order = np.argsort(ts, kind="stable")
        cut = int(np.searchsorted(ts[order], min(window_end, now), side="left"))
        out += [events[i] for i in order[:cut].tolist()]
        pending = [events[i] for i in order[cut:].tolist()]
        pending_ts = ts[order[cut:]]
        full = len(out) - len(out) % batch_size
        for i in range(0, full, batch_size):
            yield out[i:i + batch_size]
        out = out[full:]
    if out:
        yield out
    if future is not None:  # what is still pending happens at or after `now`: the builds in progress
        future.extend(pending)


class Simulator:
    """Live build events for the seeded partners, produced in (compressed) real time."""

    def __init__(self, sink: Callable[[list[dict]], object], *, rate: float = 2.0, partners: int = 40,
                 seed: int | None = None, clock: Callable[[], float] = time.time, tick_s: float = 1.0):
        if rate < 0 or tick_s <= 0:
            raise ValueError("rate must be >= 0 and tick_s > 0")
        self.sink, self.rate, self.clock, self.tick_s = sink, rate, clock, tick_s
        self._rng = np.random.default_rng(seed)
        self._rnd = random.Random(seed)
        self._ps = _partners(partners, DEFAULT_SEED)
        changes = _schedule(self._ps, 90)
        weights, tiers = _daily_weights(self._ps, changes, 90)
        self._share = weights[-1] / weights[-1].sum()  # churned and suspended partners have no share
        self._tiers = tiers[-1]
        self._lock = threading.Lock()
        self._queue: list[tuple[float, int, dict]] = []
        self._seq = 0
        self._next_start = self.clock() + self._gap()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _gap(self) -> float:
        return float(self._rng.exponential(1.0 / self.rate)) if self.rate > 0 else float("inf")

    def step(self, now: float) -> list[dict]:
        """Advance the simulation to `now` and return the events due (ts <= now) not yet returned."""
        with self._lock:
            if now - self._next_start > _MAX_CATCHUP_S:  # the clock jumped (suspend, debugger): skip ahead
                self._next_start = now - _MAX_CATCHUP_S + self._gap()
            starts = []
            while self._next_start <= now:
                starts.append(self._next_start)
                self._next_start += self._gap()
            if starts:
                self._start_builds(np.round(np.array(starts), 3))
            due = []
            while self._queue and self._queue[0][0] <= now:
                due.append(heapq.heappop(self._queue)[2])
            return due

    def schedule(self, events: list[dict]) -> None:
        """Send these events when their `ts` comes (at the next tick for those already past): the
        rest of the builds the seed or an earlier simulator left running."""
        with self._lock:
            for event in events:
                heapq.heappush(self._queue, (float(event["ts"]), self._seq, event))
                self._seq += 1

    def pending(self) -> list[dict]:
        """The events not sent yet (builds in progress), in ts order."""
        with self._lock:
            return [event for _, _, event in sorted(self._queue)]

    def _start_builds(self, start_ts: np.ndarray) -> None:
        partner_idx = self._rng.choice(len(self._share), size=len(start_ts), p=self._share)
        build_ids = [f"live-{uuid.uuid4().hex[:16]}" for _ in range(len(start_ts))]
        events, ts = _build_events(self._rng, self._rnd, start_ts=start_ts, partner_idx=partner_idx,
                                   tiers=self._tiers[partner_idx], build_ids=build_ids, id_prefixes=build_ids,
                                   ps=self._ps, incidents=_Incidents(), time_scale=_LIVE_TIME_SCALE)
        for t, event in zip(ts.tolist(), events):
            heapq.heappush(self._queue, (t, self._seq, event))
            self._seq += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                events = self.step(self.clock())
                if events:
                    self.sink(events)
            except Exception:  # a failing sink must not stop the demo
                log.exception("simulator tick failed")
            self._stop.wait(self.tick_s)

    def start(self) -> "Simulator":
        """Start producing events on a daemon thread; returns self."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="lulupay-simulator", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait up to `timeout` seconds for it to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
