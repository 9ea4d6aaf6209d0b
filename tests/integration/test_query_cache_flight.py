"""The dashboards' query cache: one computation per (query, filter set) at a time in a process."""
import threading

import pytest

from services.store.cache import QueryCache
from services.store import StoreUnavailable
from tests.conftest import wait_until

pytestmark = pytest.mark.integration


def _flight(key_part):
    with QueryCache._flights_lock:
        return next((f for k, f in QueryCache._flights.items() if key_part in k), None)


@pytest.mark.parametrize("fails", [False, True])
def test_concurrent_identical_queries_share_one_computation(redis_client, fails):
    cache = QueryCache(redis_client, "{t}:cache:")
    calls, release, results = [], threading.Event(), {}

    def compute():
        calls.append(1)
        release.wait(10)
        if fails:
            raise StoreUnavailable("down")
        return {"builds": 7, "rows": [1, 2]}

    def ask(name):
        try:
            results[name] = cache.get_or_compute("summary", (1, 2, None), compute)
        except StoreUnavailable as exc:
            results[name] = exc

    leader = threading.Thread(target=ask, args=("leader",))
    leader.start()
    wait_until(lambda: _flight("summary") is not None, message="leader computing")
    followers = [threading.Thread(target=ask, args=(f"f{i}",)) for i in range(3)]
    for thread in followers:
        thread.start()
    wait_until(lambda: _flight("summary").waiting == 3, message="followers waiting")
    release.set()
    for thread in [leader, *followers]:
        thread.join(10)
    assert len(calls) == 1
    if fails:
        assert all(isinstance(v, StoreUnavailable) for v in results.values()) and len(results) == 4
        assert redis_client.get('{t}:cache:summary:[1,2,null]') is None
    else:
        assert list(results.values()) == [{"builds": 7, "rows": [1, 2]}] * 4
        assert cache.get_or_compute("summary", (1, 2, None), lambda: pytest.fail("cached")) == {"builds": 7, "rows": [1, 2]}
    assert _flight("summary") is None


def test_different_filter_sets_do_not_wait_for_each_other(redis_client):
    cache = QueryCache(redis_client, "{t}:cache:")
    release = threading.Event()
    slow = threading.Thread(target=cache.get_or_compute, args=("summary", (1,), lambda: release.wait(10) and 1))
    slow.start()
    wait_until(lambda: _flight("summary") is not None, message="slow query computing")
    assert cache.get_or_compute("summary", (2,), lambda: 2) == 2
    release.set()
    slow.join(10)


def test_a_cache_miss_is_timed_as_a_dashboard_query_and_a_hit_is_not(redis_client):
    from services.metrics import QUERY_DURATION

    def count():
        return next(s.value for m in QUERY_DURATION.collect() for s in m.samples
                    if s.name.endswith("_count") and s.labels.get("query") == "dashboard")

    cache = QueryCache(redis_client, "{t}:cache-timing:")
    redis_client.delete(*redis_client.keys("{t}:cache-timing:*") or ["-"])
    before = count()
    assert cache.get_or_compute("summary", (3, 4, None), lambda: {"builds": 1}) == {"builds": 1}
    assert count() == before + 1
    assert cache.get_or_compute("summary", (3, 4, None), lambda: {"builds": 2}) == {"builds": 1}  # cached
    assert count() == before + 1
