"""Settings rules and the overview's plain figure builders."""
import pytest

from app.settings import Settings
from layouts.overview import KPIS, kpi_cards


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


def test_kpi_cards_format_every_figure():
    summary = {"builds_total": 12345, "success_rate": 0.9512, "duration_avg_s": 301.0, "duration_p95_s": 42.25,
               "active_builds": 3, "active_partners": 40, "assets_processed": 7, "asset_compression_ratio_avg": None}
    texts = [card.children.children.children[1].children for card in kpi_cards(summary)]
    assert len(texts) == len(KPIS)
    assert texts == ["12,345", "95.1 %", "5 min 1 s", "42.2 s", "3", "40", "7", "—"]
