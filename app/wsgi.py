"""WSGI entry point for gunicorn (`app.wsgi:server`): needs REDIS_URL (no embedded store here)."""
from app.factory import create_app
from app.settings import Settings

_settings = Settings()
if not _settings.store_url:
    raise RuntimeError("REDIS_URL must be set when running under gunicorn (the embedded store is for `serve`)")
app = create_app(_settings)
server = app.server
