"""Text exposition of prometheus-client's multiprocess files, several times faster than
`MultiProcessCollector` + `generate_latest` (which measured 100-150 ms for ~2,400 samples from two
workers on this machine; the scrape target is 50 ms).

Same input (the `*.db` files of `PROMETHEUS_MULTIPROC_DIR`), same result (tests compare the two):
counters and histograms summed over processes, histogram buckets made cumulative with `_count`,
`live*`/`all` gauges handled as prometheus-client does for the modes this app uses (`livesum`,
`livemax`, `liveall`). The speed comes from parsing each entry's JSON key once per process (keys
never change meaning) and writing the text directly instead of building sample objects.
"""
from __future__ import annotations

import glob
import json
import os
import struct
from collections import defaultdict

from prometheus_client.utils import floatToGoString

__all__ = ["MultiprocessText"]

_INT = struct.Struct("i")
_TWO_DOUBLES = struct.Struct("dd")


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _labels_text(pairs) -> str:
    return ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in pairs)


class MultiprocessText:
    """`render()` → exposition bytes of every process file in `directory`."""

    def __init__(self, directory: str):
        self.directory = directory
        # raw key → (metric name, sample name, label text without le, le text or None, help)
        self._keys: dict[bytes, tuple[str, str, str, str | None, str]] = {}

    def _parse(self, raw: bytes):
        parsed = self._keys.get(raw)
        if parsed is None:
            metric, sample, labels, help_text = json.loads(raw)
            le = labels.pop("le", None)
            parsed = self._keys[raw] = (metric, sample, _labels_text(labels.items()), le, help_text)
        return parsed

    @staticmethod
    def _entries(path: str):
        with open(path, "rb") as f:
            data = f.read()
        used = _INT.unpack_from(data, 0)[0]
        pos = 8
        while pos < used:
            length = _INT.unpack_from(data, pos)[0]
            if length + pos > used:
                raise RuntimeError(f"{path}: read beyond the used size, file corrupted")
            pos += 4
            key = data[pos:pos + length]
            pos += length + (8 - (length + 4) % 8)
            value = _TWO_DOUBLES.unpack_from(data, pos)[0]
            pos += 16
            yield key, value

    def render(self) -> bytes:
        # metric name → (type, help); (metric, sample, labels) → value; histogram parts apart
        meta: dict[str, tuple[str, str]] = {}
        plain: dict[str, dict[tuple[str, str], float]] = defaultdict(lambda: defaultdict(float))
        buckets: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
        gauge_max: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
        for path in sorted(glob.glob(os.path.join(self.directory, "*.db"))):
            parts = os.path.basename(path)[:-3].split("_")
            kind = parts[0]
            mode = parts[1] if kind == "gauge" else ""
            try:
                entries = list(self._entries(path))
            except FileNotFoundError:  # a live gauge file removed by mark_process_dead meanwhile
                continue
            for raw, value in entries:
                metric, sample, labels, le, help_text = self._parse(raw)
                meta.setdefault(metric, (kind, help_text))
                if le is not None:
                    buckets[metric][labels][le] += value
                elif kind == "gauge" and mode in ("max", "livemax"):
                    current = gauge_max[metric].get((sample, labels))
                    gauge_max[metric][(sample, labels)] = value if current is None else max(current, value)
                elif kind == "gauge" and mode in ("all", "liveall"):
                    pid_labels = f'{labels},pid="{parts[2]}"' if labels else f'pid="{parts[2]}"'
                    plain[metric][(sample, pid_labels)] = value
                else:  # counters, histogram sums, sum/livesum gauges
                    plain[metric][(sample, labels)] += value
        out: list[str] = []
        for metric in sorted(meta):
            kind, help_text = meta[metric]
            name = metric + "_total" if kind == "counter" else metric
            out.append(f"# HELP {name} {_escape_help(help_text)}\n# TYPE {name} {kind}\n")
            if kind == "histogram":
                sums = plain.get(metric, {})
                for labels, by_le in sorted(buckets[metric].items()):
                    total = 0.0
                    sep = "," if labels else ""
                    for le, count in sorted(by_le.items(), key=lambda item: float(item[0])):
                        total += count
                        out.append(f'{metric}_bucket{{{labels}{sep}le="{le}"}} {floatToGoString(total)}\n')
                    braces = f"{{{labels}}}" if labels else ""
                    out.append(f"{metric}_count{braces} {floatToGoString(total)}\n")
                    out.append(f"{metric}_sum{braces} {floatToGoString(sums.get((metric + '_sum', labels), 0.0))}\n")
                continue
            values = gauge_max[metric] if metric in gauge_max else plain.get(metric, {})
            for (sample, labels), value in sorted(values.items()):
                braces = f"{{{labels}}}" if labels else ""
                out.append(f"{sample}{braces} {floatToGoString(value)}\n")
        return "".join(out).encode()
