"""The fast multiprocess exposition equals prometheus-client's own, on real files written by two
processes (multiprocess mode must be set before prometheus_client is imported: subprocesses)."""
import os
import subprocess
import sys

from tests.conftest import ROOT

WRITER = """
from services import metrics
metrics.BUILDS.labels("acme", "success", "release").inc({n})
metrics.BUILD_DURATION.labels("success", "release").observe(123.0 * {n})
metrics.HTTP_DURATION.labels("GET", "/api/v1/summary").observe(0.003 * {n})
metrics.HTTP_REQUESTS.labels("GET", 'quote"back\\\\slash', "200").inc()
metrics.WS_CONNECTIONS.inc({n})
"""

COMPARE = """
import sys
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.parser import text_string_to_metric_families
from services.metrics.multiproc_text import MultiprocessText
import os

def samples(text):
    return {(f.name, f.type, f.documentation, s.name, tuple(sorted(s.labels.items())), s.value)
            for f in text_string_to_metric_families(text) for s in f.samples}

registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
reference = samples(generate_latest(registry).decode())
mine = samples(MultiprocessText(os.environ["PROMETHEUS_MULTIPROC_DIR"]).render().decode())
assert reference == mine, (sorted(reference - mine)[:5], sorted(mine - reference)[:5])
names = {s[3] for s in mine}
assert "lulupay_builds_total" in names and "lulupay_build_duration_seconds_bucket" in names
values = {(s[3], s[4]): s[5] for s in mine}
assert values[("lulupay_builds_total", (("build_type", "release"), ("partner_id", "acme"), ("status", "success")))] == 3
assert values[("lulupay_websocket_connections", ())] == 3
print(len(mine))
"""


def test_fast_exposition_equals_prometheus_client(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in (1, 2):  # two "workers"
        subprocess.run([sys.executable, "-c", WRITER.format(n=n)], cwd=ROOT, env=env, check=True)
    result = subprocess.run([sys.executable, "-c", COMPARE], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 100  # every pre-created series is there too
