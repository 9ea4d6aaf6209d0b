"""gunicorn settings for the `web:` line of the Procfile (docs/deployment.md).

* prometheus-client multiprocess mode: `PROMETHEUS_MULTIPROC_DIR` is set here, before any worker
  imports the app, wiped when the master starts, and a dead worker's files are marked dead.
* Each worker starts its background parts (collector candidate, HTTP statistics flusher) after the
  fork and stops them on exit, flushing what is buffered.
"""
import os
import shutil
import tempfile

bind = f"0.0.0.0:{os.environ.get('PORT', '8050')}"
# The collector's availability probe (docs/capacity.md): this instance's own /readyz, unless set.
os.environ.setdefault("LULUPAY_PROBE_URL", f"http://127.0.0.1:{os.environ.get('PORT', '8050')}/readyz")
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
wsgi_app = "app.wsgi:server"

_multiproc_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), f"lulupay-metrics-{os.getuid()}"))


def on_starting(server):
    shutil.rmtree(_multiproc_dir, ignore_errors=True)
    os.makedirs(_multiproc_dir, exist_ok=True)


def post_worker_init(worker):
    from app.factory import background, freeze_startup_objects
    from app.wsgi import app

    freeze_startup_objects()
    background(app).start()


def worker_exit(server, worker):
    try:
        from app.factory import background
        from app.wsgi import app
    except Exception:  # the app never loaded in this worker
        return
    background(app).stop()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
