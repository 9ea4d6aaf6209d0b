"""The machine a benchmark ran on (printed with every figure)."""
from __future__ import annotations

import os
import platform

import psutil


def machine() -> dict:
    """CPU model, cores, memory, OS and Python."""
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "os": platform.platform(), "python": platform.python_version()}


def cpu_seconds(processes) -> float:
    """User + system CPU seconds of `processes` so far (psutil processes; one that ended counts 0)."""
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total
