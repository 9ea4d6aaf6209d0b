-- Claim due alert notifications with a lease (services/alerting/delivery.py): each one's queue score
-- becomes the lease's end, so a claim never finished (a killed process) is due again after it.
-- KEYS: queue (zset id -> due ts), items (hash id -> notification JSON), state (hash a:<id> claims,
-- l:<id> lease token, r:<id> last result).
-- ARGV: now, lease end, lease token, how many.
-- Returns a flat list: id, claim number (1-based), notification JSON, ... per claimed notification.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, id in ipairs(due) do
  local item = redis.call('HGET', KEYS[2], id)
  if item then
    local claims = redis.call('HINCRBY', KEYS[3], 'a:' .. id, 1)
    redis.call('HSET', KEYS[3], 'l:' .. id, ARGV[3])
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out + 1] = id
    out[#out + 1] = claims
    out[#out + 1] = item
  else
    -- an orphan (no notification behind it): drop it
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[3], 'a:' .. id, 'l:' .. id, 'r:' .. id)
  end
end
return out
