"""gunicorn settings for the `web:` line of the Procfile and for `lulupay-analytics serve`, which
runs the same gunicorn in-process with these settings (docs/deployment.md).

* prometheus-client multiprocess mode: `PROMETHEUS_MULTIPROC_DIR` is set here, before any worker
  imports the app, wiped when the master starts, and a dead worker's files are marked dead. Its
  default is per port, so two instances on one machine never wipe each other's files.
* Each worker starts its background parts (collector candidate, HTTP statistics flusher) after the
  fork and stops them on exit, flushing what is buffered; a graceful stop (SIGTERM) closes its /ws
  sockets at once instead of waiting graceful_timeout for them.
* Memory: glibc gives each thread up to 8 × cores malloc arenas, and a worker runs hundreds of
  threads (one per /ws socket); the arenas keep freed memory, so a worker's RSS climbed by a
  third in 3 minutes of the soak benchmark. The master limits them to 2 (`mallopt`, inherited by
  the workers) unless MALLOC_ARENA_MAX is set (docs/performance.md, "Soak").
* Logs: gunicorn's error log and the app's records in LULUPAY_LOG_FORMAT (app/logs.py); the app
  logs its requests itself (request id, route, status, duration), so gunicorn's access log is off.
"""
import os
import shutil
import sys
import tempfile



def _limit_malloc_arenas(arenas: int = 2) -> None:
    """mallopt(M_ARENA_MAX, arenas) in this process (so in the workers it forks), on glibc, when
    MALLOC_ARENA_MAX does not already say how many."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None).mallopt(-8, arenas)  # -8: M_ARENA_MAX in glibc's malloc.h
    except (OSError, AttributeError):  # not glibc (musl has no mallopt arenas)
        pass


_limit_malloc_arenas()
_port = os.environ.get("PORT", "8050")
bind = f"0.0.0.0:{_port}"
# The collector's availability probe (docs/capacity.md): this instance's own /readyz, unless set.
os.environ.setdefault("LULUPAY_PROBE_URL", f"http://127.0.0.1:{_port}/readyz")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# gthread: every open /ws socket holds one pool thread for its lifetime, so the pool is sized for
# the sockets plus the page and API requests (docs/deployment.md: gthread vs gevent, measured).
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "640"))
# A gthread worker stops accepting when it holds this many connections, so sockets spread over the
# workers instead of queueing behind a full pool.
worker_connections = threads if worker_class == "gthread" else int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "2000"))
graceful_timeout = 30
preload_app = False  # the background threads and Redis pub/sub start after the fork
# Built in each worker after the fork (`serve` gives gunicorn its own app instead).
wsgi_app = "app.wsgi:production_server()"
logger_class = "app.logs.GunicornLogger"

_multiproc_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), f"lulupay-metrics-{os.getuid()}-{_port}"))


def on_starting(server):
    _refuse_unusable_settings(server)
    shutil.rmtree(_multiproc_dir, ignore_errors=True)
    os.makedirs(_multiproc_dir, exist_ok=True)


def _refuse_unusable_settings(server):
    """Stop the master at once, saying why, when the settings are refused (e.g. a weak secret in
    production) — rather than in every worker, with a traceback each."""
    from pydantic import ValidationError

    from app.settings import Settings

    try:
        Settings()
    except ValidationError as exc:  # its messages name the settings, never their values
        problems = [f"{'.'.join(map(str, e['loc'])) + ': ' if e['loc'] else ''}{e['msg'].removeprefix('Value error, ')}"
                    for e in exc.errors(include_url=False)]
        server.log.error("settings refused: %s", "; ".join(problems))
        raise SystemExit(1) from None


def post_worker_init(worker):
    from app.factory import freeze_startup_objects, server_background, warm_up

    warm_up(worker.wsgi)  # Dash's first-request setup, before the worker accepts (its docstring says why)
    freeze_startup_objects()
    background = server_background(worker.wsgi).start()
    _close_sockets_on_graceful_stop(background)


def _close_sockets_on_graceful_stop(background):
    """On SIGTERM gunicorn waits, up to graceful_timeout, for every open connection, and a /ws socket
    stays open as long as its page does. Close them at once (1001; the page reconnects, during a
    deploy to another instance), so a graceful stop lasts only as long as the requests in flight.
    The worker's own SIGTERM handler (stop accepting) runs first."""
    import signal
    import threading

    stop_accepting = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        stop_accepting(signum, frame)
        threading.Thread(target=background.hub.stop, name="ws-close", daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)


def worker_exit(server, worker):
    try:
        from app.factory import server_background
    except Exception:  # the app cannot even be imported in this worker
        return
    background = server_background(getattr(worker, "wsgi", None))  # None: the app never loaded here
    if background is not None:
        background.stop()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
