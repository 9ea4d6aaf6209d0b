"""Settings rules."""
import secrets
import uuid

import pytest

from app.settings import MIN_SECRET_BITS, Settings, secret_entropy_bits, secret_weakness


def strong() -> str:
    """A secret as docs/security.md says to make one."""
    return secrets.token_urlsafe(32)


def production(**values) -> Settings:
    return Settings(_env_file=None, env="production", **{"secret_key": strong(), "ingest_tokens": strong(), **values})


def test_production_refuses_default_secret_and_open_ingest():
    with pytest.raises(ValueError, match="LULUPAY_SECRET_KEY.*LULUPAY_INGEST_TOKENS"):
        Settings(_env_file=None, env="production")


def test_production_starts_with_secrets():
    one, two = strong(), strong()
    settings = production(ingest_tokens=f" {one}, {two} ,", metrics_token=strong())
    assert settings.ingest_token_list == [one, two]


WEAK = {
    "repeated character": "s" * 32,
    "repeated digits": "0123456789" * 4,
    "alphabet": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
    "password and a run": "Password" + "1234567890" + "abcdefghijklmnopqrstuvwxyz",
    "a random block twice": "Xk9pQ2mZ7wR4tY1uXk9pQ2mZ7wR4tY1u",
    "too short": secrets.token_urlsafe(16),  # 22 characters
    "a UUID": str(uuid.UUID(int=0x1234_5678_9ABC_4DEF_8123_4567_89AB_CDEF)),
    "the development default twice": "dev-insecure-change-me" * 2,
}


@pytest.mark.parametrize("weak", WEAK.values(), ids=WEAK.keys())
def test_production_refuses_a_weak_secret_key_without_printing_it(weak):
    with pytest.raises(ValueError, match="LULUPAY_SECRET_KEY is too weak") as refused:
        production(secret_key=weak)
    assert weak not in str(refused.value)


def test_every_ingest_token_is_checked_and_named_by_position():
    with pytest.raises(ValueError, match="LULUPAY_INGEST_TOKENS entry 2 of 3 is too weak") as refused:
        production(ingest_tokens=f"{strong()},{'t' * 40},{strong()}")
    assert "entry 1 " not in str(refused.value) and "entry 3 " not in str(refused.value)


def test_metrics_token_is_checked_only_when_set():
    assert production(metrics_token="").metrics_token == ""
    with pytest.raises(ValueError, match="LULUPAY_METRICS_TOKEN is too weak"):
        production(metrics_token="scrape-secret-123")


def test_development_takes_any_secret():
    settings = Settings(_env_file=None, secret_key="short", ingest_tokens="t", metrics_token="m")
    assert settings.ingest_token_list == ["t"]


def test_generated_tokens_always_pass():
    samples = [secrets.token_urlsafe(32) for _ in range(5000)]
    assert [s for s in samples if secret_weakness(s) is not None] == []
    assert min(secret_entropy_bits(s) for s in samples) > MIN_SECRET_BITS * 1.2  # with room to spare
    assert secret_weakness(secrets.token_hex(32)) is None


def test_entropy_estimate_discounts_words_runs_and_repeats():
    block = secrets.token_urlsafe(24)[:20]
    assert secret_entropy_bits(block * 3) == pytest.approx(secret_entropy_bits(block))
    assert secret_entropy_bits("password" + block) == pytest.approx(secret_entropy_bits(block))
    assert secret_entropy_bits("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") == 0
    assert secret_entropy_bits("zyxwvutsrqponmlkjihgfedcba") <= 2


def test_log_format_setting(monkeypatch):
    monkeypatch.setenv("LULUPAY_LOG_FORMAT", "JSON")
    assert Settings(_env_file=None).log_format == "json"
    monkeypatch.setenv("LULUPAY_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        Settings(_env_file=None)
    monkeypatch.delenv("LULUPAY_LOG_FORMAT")
    assert Settings(_env_file=None).log_format == "text"


def test_environment_names(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/2")
    monkeypatch.setenv("LULUPAY_RETENTION_DAYS", "30")
    settings = Settings(_env_file=None)
    assert settings.redis_url == "redis://example:6379/2" and settings.retention_s == 30 * 86400
