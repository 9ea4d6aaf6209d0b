"""Log lines: plain text for a terminal, or one JSON object per line (`LULUPAY_LOG_FORMAT=json`)
for Loki or Elasticsearch — the same for the CLI commands, `serve` and the Procfile's gunicorn.

* `configure_logging(level, log_format)` sets up the root logger (standard error) once per process.
* `GunicornLogger` (gunicorn.conf.py's `logger_class`) writes gunicorn's own error log in the same
  format and configures the root logger of the master, which the workers inherit.
* Request lines (`log_request`, called by the hook in app/factory.py) carry the request id, the
  route, the method, the status and the duration; a record logged while a request is served carries
  its `request_id` too (`RequestIdFilter`). The app's request log replaces gunicorn's access log:
  it knows the route template, the Dash callback and the request id, which gunicorn does not.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import uuid
from datetime import datetime, timezone

from gunicorn import glogging
from pythonjsonlogger.json import JsonFormatter

__all__ = ["LOG_FORMATS", "REQUEST_ID_HEADER", "configure_logging", "current_format", "configured_log_format",
           "JsonLineFormatter", "RequestIdFilter", "GunicornLogger", "request_id_for", "request_log_enabled",
           "log_request"]

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REQUEST_ID_HEADER = "X-Request-ID"
# An incoming X-Request-ID is kept when it looks like an id (a UUID, a trace id, a load balancer's
# "Root=1-..."-style value without its punctuation); anything else gets a fresh id instead.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
MAX_LOGGED_PATH = 2048
_OURS = "_lulupay"  # marks the root handler configure_logging installed

request_log = logging.getLogger("lulupay.request")


class JsonLineFormatter(JsonFormatter):
    """One JSON object per record: time (ISO 8601, UTC, milliseconds), level, logger, message,
    pid, then the record's extra fields (request_id, route, …) and `exc_info` for a traceback."""

    def __init__(self):
        super().__init__(["levelname", "name", "message", "process"],
                         rename_fields={"levelname": "level", "name": "logger", "process": "pid"})

    def add_fields(self, log_data, record, message_dict):
        """`time` first, then what python-json-logger puts in."""
        log_data["time"] = datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds")
        super().add_fields(log_data, record, message_dict)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to a record logged while a Flask request is served (once the request hook
    has given the request its id)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = _current_request_id()
            if request_id is not None:
                record.request_id = request_id
        return True


def _current_request_id() -> str | None:
    from flask import g, has_request_context

    return g.get("request_id") if has_request_context() else None


def formatter_for(log_format: str) -> logging.Formatter:
    """The formatter of `log_format` (`text` or `json`)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    return JsonLineFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(level: str | int, log_format: str) -> None:
    """Send every logger's records (and Python's warnings) at `level` and above to standard error
    in `log_format`; calling it again replaces the handler it installed (never stacks a second one)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(log_format))
    handler.addFilter(RequestIdFilter())
    setattr(handler, _OURS, log_format)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.captureWarnings(True)  # a library's warning is a record too (one JSON line, not raw text)


def current_format() -> str:
    """The format configure_logging set up in this process (`text` when it has not run)."""
    return next((getattr(h, _OURS) for h in logging.getLogger().handlers if getattr(h, _OURS, False)), "text")


def configured_log_format() -> str:
    """LULUPAY_LOG_FORMAT as the settings read it (environment, then `.env`); when the settings do not
    load, the environment's value or `text` — the command then reports what is wrong."""
    from app.settings import Settings

    try:
        return Settings().log_format
    except ValueError:
        value = os.environ.get("LULUPAY_LOG_FORMAT", "text").strip().lower()
        return value if value in LOG_FORMATS else "text"


class GunicornLogger(glogging.Logger):
    """gunicorn's logger, writing its error log in LULUPAY_LOG_FORMAT and setting up the root logger
    (the app's records) the same way, at gunicorn's `loglevel`. gunicorn's access log stays off unless
    asked for (`--access-logfile`): the app logs its requests itself."""

    def setup(self, cfg):
        """gunicorn's setup, then our format on its handlers and on the root logger."""
        super().setup(cfg)
        log_format = configured_log_format()
        configure_logging(self.loglevel, log_format)
        if log_format == "json":
            for logger in (self.error_log, self.access_log):
                for handler in logger.handlers:
                    handler.setFormatter(JsonLineFormatter())


def request_id_for(incoming: str | None) -> str:
    """The id of a request: its `X-Request-ID` when that is a sane id (1–128 letters, digits and
    `._:-`, starting with a letter or digit), else a new random one."""
    if incoming and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def request_log_enabled(settings) -> bool:
    """Whether every request gets a log line: LULUPAY_ACCESS_LOG when it is set, else on for JSON
    logs (a log store wants them) and off for text (a terminal would scroll with them)."""
    if "access_log" in settings.model_fields_set:
        return settings.access_log
    return settings.log_format == "json"


def log_request(*, request_id: str, method: str, path: str, route: str, status: int, duration_ms: float) -> None:
    """One line for one served request (INFO on the `lulupay.request` logger); control characters of
    the (decoded) path are escaped, so a request cannot forge a line of a text log."""
    path = _CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", path[:MAX_LOGGED_PATH])
    request_log.info("%s %s %s %.1f ms route=%s request_id=%s", method, path, status, duration_ms, route, request_id,
                     extra={"request_id": request_id, "method": method, "path": path, "route": route,
                            "status": status, "duration_ms": round(duration_ms, 3)})
