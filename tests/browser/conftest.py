"""Browser tests: Dash's `dash_duo` driving Debian's chromium + chromedriver, headless.

Without chromium/chromedriver they are skipped with a loud message — except with CI=true, where
they fail (make test installs the packages when it runs as root).

dash[testing] stops its server thread by raising an exception in it asynchronously, which can land
in another thread of the app (the realtime subscriber); after that, CPython 3.11's parser failed
the hypothesis plugin's late import in the terminal summary ("AST constructor recursion depth
mismatch") and `pytest tests/browser` exited 1 with every test passed. Importing hypothesis up
front avoids that late import."""
from __future__ import annotations

import os
import shutil
import time
import warnings

import hypothesis  # noqa: F401 — imported now, not at the session's end (see below)
import pytest
from selenium.webdriver.chrome.options import Options

from app.factory import create_app
from app.settings import Settings
from services.demo.generator import generate_history
from services.container import build_services

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_BROWSER = bool(shutil.which("chromium") and shutil.which("chromedriver"))


def pytest_setup_options():
    """Selenium options for dash[testing]: Debian's chromium, headless, laptop-sized window."""
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--window-size=1280,1000", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"):
        options.add_argument(arg)
    return options


@pytest.fixture(autouse=True)
def _need_browser():
    if HAVE_BROWSER:
        return
    message = "chromium/chromedriver not installed: BROWSER TESTS SKIPPED (make test installs them as root)"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " — CI=true does not allow skipping")
    warnings.warn(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def seeded(valkey_url):
    """Services on the test Valkey holding two days of demo history (seeded once per module)."""
    import redis

    redis.Redis.from_url(valkey_url).flushall()
    settings = Settings(_env_file=None, redis_url=valkey_url, collector_interval_s=0.5)
    services = build_services(settings)
    now = time.time()
    for batch in generate_history(days=2, partners=40, builds_per_day=400, now=now):
        services.ingest.ingest_batch(batch)
    return services


@pytest.fixture
def dashboard(seeded):
    """A fresh Dash app bound to the seeded store."""
    return create_app(seeded.settings, build_services(seeded.settings))
