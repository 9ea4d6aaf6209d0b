"""The store: the Redis/Valkey connection and scripts (`store`), every key name (`keys`), rollup
field names (`fields`), the query and bucket caches (`cache`), the leader lock (`leader`) and the
embedded server (`embedded`)."""
from services.store.store import STORE_ERRORS, ApplyResult, Store, StoreNotDurable, StoreUnavailable, connect

__all__ = ["Store", "StoreUnavailable", "StoreNotDurable", "STORE_ERRORS", "ApplyResult", "connect"]
