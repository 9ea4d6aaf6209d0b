-- Queue one alert notification unless its id is queued or was finished (services/alerting/delivery.py).
-- KEYS: queue (zset id -> due ts), items (hash id -> notification JSON), done (zset id -> finish ts).
-- ARGV: id, notification JSON, due ts.
-- Returns 1 = queued, 0 = already queued or finished (nothing written).
local id = ARGV[1]
if redis.call('ZSCORE', KEYS[3], id) or redis.call('HEXISTS', KEYS[2], id) == 1 then
  return 0
end
redis.call('HSET', KEYS[2], id, ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], id)
return 1
