-- Replace the first N deltas of a rollup list by their merge, if the list still starts with the
-- deltas the caller read (deltas carry unique tokens; lists are append-only apart from this).
-- ARGV: repeated (key, n, first_delta, last_delta, merged_delta).
-- Returns one flag per key, in ARGV order: 1 = compacted, 0 = the list had changed (left alone).
local done = {}
local i = 1
while i <= #ARGV do
  local key, n = ARGV[i], tonumber(ARGV[i + 1])
  local flag = 0
  if redis.call('LINDEX', key, 0) == ARGV[i + 2] and redis.call('LINDEX', key, n - 1) == ARGV[i + 3] then
    local ttl = redis.call('PTTL', key)
    redis.call('LTRIM', key, n, -1)
    redis.call('LPUSH', key, ARGV[i + 4])
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
    flag = 1
  end
  done[#done + 1] = flag
  i = i + 5
end
return done
