"""BucketCache bookkeeping and the token suffix that names a delta."""
import orjson

from services.queries.reader import delta_suffix, sum_deltas
from services.store.cache import BucketCache
from services.ingest.plan import TOKEN_FIELD


def test_suffix_is_the_token_field_to_the_end():
    blob = orjson.dumps({"n:success:debug": 3, "ds:success:debug": 1.5, TOKEN_FIELD: "abc1.7"})
    assert delta_suffix(blob) == b'"_t":"abc1.7"}'
    assert delta_suffix(b'{"n:x":1}') == b""


def test_sum_deltas_adds_fields_and_drops_tokens():
    blobs = [orjson.dumps({"1": 2, "5": 1, TOKEN_FIELD: "a"}), orjson.dumps({"5": 3, TOKEN_FIELD: "b"})]
    assert sum_deltas("bh", blobs) == {1: 2, 5: 4}
    assert sum_deltas("b", blobs[:1]) == {"1": 2, "5": 1}


def test_cache_evicts_least_recently_used_by_field_count():
    cache = BucketCache(max_fields=5)
    cache.put("a", b"s1", {"x": 1, "y": 2})
    cache.put("b", b"s2", {"x": 1, "y": 2})
    assert cache.get_many(["a"])[0] == (b"s1", {"x": 1, "y": 2}, None)  # a is now the most recent
    cache.put("c", b"s3", {"z": 1, "w": 1})
    assert [e is not None for e in cache.get_many(["a", "b", "c"])] == [True, False, True]
    cache.put("a", b"s4", {"x": 5})
    assert cache.get_many(["a"])[0] == (b"s4", {"x": 5}, None) and len(cache) == 2


def test_entries_without_a_token_are_not_kept():
    cache = BucketCache()
    cache.put("a", b"", {"x": 1})
    assert cache.get_many(["a"]) == [None]
