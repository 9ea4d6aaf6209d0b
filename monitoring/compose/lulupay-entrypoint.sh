#!/bin/sh
# Entry point of the `app` and `collector` services of docker-compose.monitoring.yml: installs the
# dependencies listed in the (read-only) repository's pyproject.toml, then runs the command from
# the repository root, so `gunicorn --config gunicorn.conf.py` and `python -m app ...` work as in
# the Procfile. Nothing is written to the repository.
set -eu
cd /src
python - > /tmp/requirements.txt <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
PY
pip install --quiet --no-cache-dir -r /tmp/requirements.txt
exec "$@"
