-- LuluPay ingest: one atomic call per batch (see docs/storage.md).
-- ARGV[1]: JSON header from services/ingest/plan.py; ARGV[2..]: one chunk of raw events (a JSON array)
-- per partition, then one argument holding every rollup delta document, separated by \30.
-- Returns {1, {rollup lists due for compaction}} when written, or {0, {positions}} listing the
-- events already stored — then nothing was written and the caller re-plans without them.
local p = cjson.decode(ARGV[1])
local seen = p.seen  -- {{set_key, {event id, ...}, expire_at}, ...}
local dups = {}
local position = 0
for _, group in ipairs(seen) do
  local ids = group[2]
  local m = #ids
  local a = 1
  while a <= m do
    local b = math.min(a + 999, m)
    local found = redis.call('SMISMEMBER', group[1], unpack(ids, a, b))
    for k = 1, b - a + 1 do
      if found[k] == 1 then dups[#dups + 1] = position + a - 1 + k - 1 end
    end
    a = b + 1
  end
  position = position + m
end
if #dups > 0 then
  -- a replay writes one counter: so the durability wait that follows (WAITAOF / WAIT on this
  -- connection) covers a log offset past the original write, wherever that write came from
  redis.call('INCR', p.replays)
  return {0, dups}
end

for _, group in ipairs(seen) do
  local ids = group[2]
  local m = #ids
  local a = 1
  while a <= m do
    local b = math.min(a + 999, m)
    redis.call('SADD', group[1], unpack(ids, a, b))
    a = b + 1
  end
  redis.call('EXPIREAT', group[1], group[3])
end

local arg = 2
for _, op in ipairs(p.push) do  -- {key, expire_at}: ARGV[arg] is the batch's chunk (a JSON array)
  redis.call('RPUSH', op[1], ARGV[arg])
  redis.call('EXPIREAT', op[1], op[2])
  arg = arg + 1
end

local compact = {}
local deltas = ARGV[arg]  -- every rollup delta, in p.rollup order, separated by \30
local from = 1
for _, op in ipairs(p.rollup) do  -- {key, expire_at}
  local sep = string.find(deltas, '\30', from, true)
  local last = sep and sep - 1 or #deltas
  local length = redis.call('RPUSH', op[1], string.sub(deltas, from, last))
  from = last + 2
  redis.call('EXPIREAT', op[1], op[2])
  if length >= p.compact_at then compact[#compact + 1] = op[1] end
end
-- every (resolution, bucket) written gets a fresh generation: a reader holding a bucket's sums
-- read under its previous generation knows they may have changed (and none of its lists did while
-- the generation stays; compaction keeps sums)
for _, op in ipairs(p.gen) do redis.call('SET', op[1], p.token, 'EXAT', op[2]) end
-- written, not announced yet: the process that announces the events (live channel, metrics)
-- deletes it; a replay of a batch whose answer was lost finds it and announces instead
redis.call('SET', p.announce[1], '1', 'EX', p.announce[2])
-- when ingest last accepted a batch (the alert catalogue's no_events_minutes)
redis.call('SET', p.last[1], p.last[2])
for _, op in ipairs(p.zadd) do redis.call('ZADD', op[1], op[2], op[3]) end

-- failure signatures: {first_key, last_key, example_key, signature, first_ts, last_ts, example}
for _, op in ipairs(p.sig) do
  redis.call('ZADD', op[1], 'LT', op[5], op[4])
  redis.call('ZADD', op[2], 'GT', op[6], op[4])
  redis.call('HSETNX', op[3], op[4], op[7])
end
for _, op in ipairs(p.pat) do redis.call('HSETNX', op[1], op[2], op[3]) end

for _, op in ipairs(p.live) do
  local kind = op[1]
  if kind == 'S' then
    -- build.started: {S, build_key, done_key, active_all, active_partner, build_id, ts, partner, build_type, app_version, exat}
    if redis.call('EXISTS', op[3]) == 0 then
      redis.call('HSET', op[2], 'build_id', op[6], 'partner_id', op[8], 'build_type', op[9],
                 'app_version', op[10], 'started_ts', op[7])
      redis.call('ZADD', op[4], 'GT', op[7], op[6])
      redis.call('ZADD', op[5], 'GT', op[7], op[6])
      redis.call('EXPIREAT', op[2], op[11])
    end
  elseif kind == 'G' then
    -- build.stage: {G, build_key, done_key, active_all, active_partner, build_id, ts, partner, stage_field, status, exat}
    -- Each stage keeps its own field, so stages arriving out of order still leave the right picture.
    if redis.call('EXISTS', op[3]) == 0 then
      redis.call('HSET', op[2], 'build_id', op[6], 'partner_id', op[8], op[9], op[10])
      redis.call('ZADD', op[4], 'GT', op[7], op[6])
      redis.call('ZADD', op[5], 'GT', op[7], op[6])
      redis.call('EXPIREAT', op[2], op[11])
    end
  elseif kind == 'F' then
    -- build.finished: {F, build_key, done_key, active_all, active_partner, build_id, exat}
    redis.call('SET', op[3], '1', 'EXAT', op[7])
    redis.call('DEL', op[2])
    redis.call('ZREM', op[4], op[6])
    redis.call('ZREM', op[5], op[6])
  elseif kind == 'P' then
    -- partner.upserted: {P, partners_key, history_key, partner_id, ts, record_json}
    local current = redis.call('HGET', op[2], op[4])
    if (not current) or tonumber(cjson.decode(current).ts) <= tonumber(op[5]) then
      redis.call('HSET', op[2], op[4], op[6])
    end
    redis.call('ZADD', op[3], op[5], op[6])
  end
end
return {1, compact}
