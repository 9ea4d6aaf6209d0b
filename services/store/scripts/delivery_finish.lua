-- Record one delivery attempt and apply its outcome (services/alerting/delivery.py), atomically.
-- KEYS: queue, items, state, done (zset id -> finish ts), attempts of the attempt's UTC day
-- (zset, score = attempt ts), totals (hash outcome -> count).
-- ARGV: id, lease token, outcome (delivered | rejected | expired | retry), next due ts (retry),
--       attempt JSON, attempt ts, attempts key expiry (epoch s), now, done cutoff (finish ts older
--       than this are forgotten), last result JSON.
-- Returns what was applied: the outcome; 'finished' = the notification was already finished (by
-- another claim); 'stale' = a retry by a claim that lost its lease (the current claim decides).
local id, token, outcome = ARGV[1], ARGV[2], ARGV[3]
redis.call('ZADD', KEYS[5], ARGV[6], ARGV[5])
redis.call('EXPIREAT', KEYS[5], ARGV[7])
if redis.call('ZSCORE', KEYS[4], id) or redis.call('HEXISTS', KEYS[2], id) == 0 then
  return 'finished'
end
if outcome == 'retry' then
  if redis.call('HGET', KEYS[3], 'l:' .. id) ~= token then
    return 'stale'
  end
  redis.call('ZADD', KEYS[1], ARGV[4], id)
  redis.call('HDEL', KEYS[3], 'l:' .. id)
  redis.call('HSET', KEYS[3], 'r:' .. id, ARGV[10])
  redis.call('HINCRBY', KEYS[6], 'retried', 1)
  return 'retry'
end
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], 'a:' .. id, 'l:' .. id, 'r:' .. id)
redis.call('ZADD', KEYS[4], ARGV[8], id)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[9])
redis.call('HINCRBY', KEYS[6], outcome, 1)
return outcome
