-- Read rollup lists for a reader that keeps their sums (see docs/storage.md, "Reads").
-- ARGV[1]: rollup keys, ARGV[2]: one suffix per key, both separated by \30. A suffix is the end of
-- the last delta of that list as the caller last read it (it holds the delta's unique token), or
-- empty when the caller holds nothing for the key.
-- Reply, per key: 0 when the list still ends with that delta — every change to a rollup list either
-- appends a delta with a fresh token or compacts deltas without changing their sum, so the caller's
-- sum is still exact — otherwise the whole list (empty when the key does not exist).
-- ARGV[3] (optional): generation keys separated by \30; their values (false when absent) are
-- appended to the reply as one more element, read in the same atomic call as the lists.
local keys, suffixes = ARGV[1], ARGV[2]
local out = {}
local n = 0
local kf, sf = 1, 1
local kn, sn = #keys, #suffixes
while kf <= kn do
  local ksep = string.find(keys, '\30', kf, true) or (kn + 1)
  local ssep = string.find(suffixes, '\30', sf, true) or (sn + 1)
  local key = string.sub(keys, kf, ksep - 1)
  local ls = ssep - sf
  kf, n = ksep + 1, n + 1
  local same = false
  if ls > 0 then
    local last = redis.call('LINDEX', key, -1)
    same = last and #last >= ls and string.sub(last, -ls) == string.sub(suffixes, sf, ssep - 1)
  end
  sf = ssep + 1
  if same then
    out[n] = 0
  else
    out[n] = redis.call('LRANGE', key, 0, -1)
  end
end
if ARGV[3] and #ARGV[3] > 0 then
  local names, gf = ARGV[3], 1
  local gens = {}
  while gf <= #names do
    local gsep = string.find(names, '\30', gf, true) or (#names + 1)
    gens[#gens + 1] = redis.call('GET', string.sub(names, gf, gsep - 1))
    gf = gsep + 1
  end
  out[n + 1] = gens
end
return out
