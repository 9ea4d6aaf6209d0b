"""Settings rules."""
import pytest

from app.settings import Settings


def test_production_refuses_default_secret_and_open_ingest():
    with pytest.raises(ValueError, match="LULUPAY_SECRET_KEY.*LULUPAY_INGEST_TOKENS"):
        Settings(_env_file=None, env="production")


def test_production_starts_with_secrets():
    settings = Settings(_env_file=None, env="production", secret_key="s" * 32, ingest_tokens=" a, b ,")
    assert settings.ingest_token_list == ["a", "b"]


def test_environment_names(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/2")
    monkeypatch.setenv("LULUPAY_RETENTION_DAYS", "30")
    settings = Settings(_env_file=None)
    assert settings.redis_url == "redis://example:6379/2" and settings.retention_s == 30 * 86400
