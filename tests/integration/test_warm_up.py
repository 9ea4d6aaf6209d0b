"""A serving process answers its own first request before it accepts any (gunicorn's
post_worker_init): Dash's first-request setup is done when the browser's parallel script loads
arrive, and the warm-up is not counted as traffic."""
import pytest

from app.factory import create_app, warm_up
from services import metrics

pytestmark = pytest.mark.integration


def _requests_counted() -> float:
    return sum(sample.value for family in metrics.HTTP_REQUESTS.collect() for sample in family.samples
               if sample.name.endswith("_total"))


def test_warm_up_sets_dash_up_before_the_first_request_and_is_not_counted(services):
    app = create_app(services.settings, services)
    counted, in_flight = _requests_counted(), metrics.HTTP_IN_FLIGHT._value.get()
    assert not app._got_first_request["setup_server"]  # Dash would set itself up on the first request
    assert warm_up(app.server) == 200
    assert app._got_first_request["setup_server"] and app._got_first_request["pages"]
    # the scripts the index names are registered (a worker 404'd React when two first requests raced)
    assert any(path.startswith("deps/react@") for path in app.registered_paths["dash"])
    client = app.server.test_client()  # not `with`: a preserved context is torn down twice
    page = client.get("/").get_data(as_text=True)  # and a script the page names is served at once
    script = next(part.split('"')[0] for part in page.split('src="')[1:] if "/deps/react@" in part)
    assert client.get(script).status_code == 200
    # the page and the script are counted, not the warm-up: in the metrics and in the request statistics
    assert _requests_counted() == counted + 2
    assert sum(fields.get("n:2xx", 0) for fields in services.http_stats._buffer.values()) == 2
    assert metrics.HTTP_IN_FLIGHT._value.get() == in_flight
