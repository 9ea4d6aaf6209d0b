"""Monitoring tests: Debian's promtool / prometheus / amtool run for real.

Without them (or without PyYAML) the tests skip with a loud message — except with CI=true, where
they fail (`make test` installs the packages when it runs as root: .ci/system-deps)."""
from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from tests.conftest import ROOT

MONITORING = ROOT / "monitoring"
PROMETHEUS_DIR = MONITORING / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
DASHBOARD = MONITORING / "grafana" / "dashboards" / "lulupay-operations.json"
COMPOSE = MONITORING / "docker-compose.monitoring.yml"
ALERTMANAGER = MONITORING / "alertmanager" / "alertmanager.yml"


def require(*tools: str) -> dict[str, str]:
    """Paths of the named executables; skip loudly when one is missing (fail with CI=true)."""
    found = {tool: shutil.which(tool) for tool in tools}
    missing = [tool for tool, path in found.items() if not path]
    if missing:
        message = (f"{', '.join(missing)} not installed: MONITORING TESTS SKIPPED "
                   f"(apt-get install prometheus prometheus-alertmanager; make test does it as root)")
        if os.environ.get("CI") == "true":
            pytest.fail(message + " — CI=true does not allow skipping")
        warnings.warn(message)
        pytest.skip(message)
    return found


def yaml_module():
    """PyYAML (a dev dependency); skip loudly when missing (fail with CI=true)."""
    try:
        import yaml
    except ImportError:
        message = "PyYAML not installed: MONITORING CONFIG TESTS SKIPPED (pip install -e '.[dev]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " — CI=true does not allow skipping")
        warnings.warn(message)
        pytest.skip(message)
    return yaml


def load_yaml(path: Path):
    return yaml_module().safe_load(path.read_text())


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a tool; the result carries stdout and stderr as text."""
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kwargs)
