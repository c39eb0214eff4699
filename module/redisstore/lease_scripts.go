package redisstore

import "github.com/redis/go-redis/v9"

// The lease scripts take the keys of one license (leaseKeys), in this
// order: KEYS[1] used and KEYS[2] limit (the gate's credits, see
// chargeLua), KEYS[3] revoked (the gate's revocation), KEYS[4] leases
// (hash: lease id -> record), KEYS[5] lease_devices (sorted set: hardware
// id -> the end in unix ms of its last lease, so a member scored at or
// before now holds no seat), KEYS[6] lease_items (hash: hardware id -> its
// leases by item), KEYS[7] lease_req (sorted set: request id -> the unix
// ms of its take or tombstone), KEYS[8] lease_undo (hash: request id ->
// what undoing its take restores; absent for a tombstone and once
// undone). All share the license's hash tag.
//
// Records are length-prefixed strings ("<len>:<bytes>" repeated), so any
// item, hardware or lease id round-trips whatever bytes it holds: a
// lease record is (until ms, item, hardware id, issuer), a device's leases
// are (item, lease id) pairs, an undo record is (credits charged, hardware
// id, then per lease taken or renewed: item, lease id, the record written,
// the record it had before or "", the lease replaced or "", that lease's
// record or ""). Times come from the caller, as for the charge.

// leaseLib is the part the lease scripts share.
const leaseLib = `
local now = tonumber(ARGV[1])

local function pack(list)
  local out = {}
  for i, s in ipairs(list) do
    out[#out + 1] = #s .. ':' .. s
  end
  return table.concat(out)
end

local function unpack_(s)
  local list, pos = {}, 1
  while s and pos <= #s do
    local colon = string.find(s, ':', pos, true)
    local n = tonumber(string.sub(s, pos, colon - 1))
    list[#list + 1] = string.sub(s, colon + 1, colon + n)
    pos = colon + n + 1
  end
  return list
end

-- The live lease with id, as {until, item, hw}, or nil.
local function lease(id)
  local r = redis.call('HGET', KEYS[4], id)
  if not r then return nil end
  local l = unpack_(r)
  if tonumber(l[1]) <= now then return nil end
  return l
end

-- hw's live leases as a list of item, id pairs, and the end of the last.
-- Writes the pruned list back (or forgets hw) when write is true.
local function device(hw, write)
  local items = unpack_(redis.call('HGET', KEYS[6], hw))
  local keep, last, dropped = {}, 0, false
  for i = 1, #items, 2 do
    local l = lease(items[i + 1])
    if l then
      keep[#keep + 1] = items[i]
      keep[#keep + 1] = items[i + 1]
      last = math.max(last, tonumber(l[1]))
    else
      dropped = true
      if write then redis.call('HDEL', KEYS[4], items[i + 1]) end
    end
  end
  if write and dropped then
    if #keep == 0 then
      redis.call('HDEL', KEYS[6], hw)
      redis.call('ZREM', KEYS[5], hw)
    else
      redis.call('HSET', KEYS[6], hw, pack(keep))
      redis.call('ZADD', KEYS[5], string.format('%d', last), hw)
    end
  end
  return keep, last
end

-- Forget the request ids older than ms, with their undo records.
local function forget(ms)
  local old = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', '(' .. ms)
  for _, id in ipairs(old) do
    redis.call('HDEL', KEYS[8], id)
  end
  if #old > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. ms)
  end
end

-- Write hw's leases (item, id pairs) back, then its seat: the end of its
-- last live lease, or no seat at all.
local function settle(hw, items)
  if #items == 0 then
    redis.call('HDEL', KEYS[6], hw)
  else
    redis.call('HSET', KEYS[6], hw, pack(items))
  end
  local keep, last = device(hw, true)
  if #keep == 0 then
    redis.call('HDEL', KEYS[6], hw)
    redis.call('ZREM', KEYS[5], hw)
  else
    redis.call('ZADD', KEYS[5], string.format('%d', last), hw)
  end
end

-- Forget the devices whose last lease has ended, with their leases.
local function prune()
  local gone = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', ARGV[1])
  for _, hw in ipairs(gone) do
    local items = unpack_(redis.call('HGET', KEYS[6], hw))
    for i = 2, #items, 2 do
      redis.call('HDEL', KEYS[4], items[i])
    end
    redis.call('HDEL', KEYS[6], hw)
  end
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ARGV[1])
  end
end

-- Make k live at least until ms (0: leave it).
local function extend(k, ms)
  if ms ~= '0' then
    local at = redis.call('PEXPIRETIME', k)
    if at < 0 or at < tonumber(ms) then
      redis.call('PEXPIREAT', k, ms)
    end
  end
end
`

// takeLeasesLua is the whole of a LeaseRequest.
//
// ARGV: 1 now ms, 2 hardware id, 3 seats (0: no limit), 4 limit (-1: no
// credits), 5 until ms, 6 expires ms (0: never), 7 check only ("1"),
// 8 issuer of the lease tokens, 9 request id ("": none), 10 the ms before
// which request ids are forgotten (now - policy.UndoWindow), 11 the ms
// until which they must live (now + policy.UndoWindow), then per item
// four: item, lease id to renew ("" for a new lease), new lease id, cost.
//
// Returns {-1} when the request id was undone (or taken) before: nothing
// is done. Otherwise per item six values: outcome (0 granted, 1 revoked,
// 2 credits exhausted, 3 seats full, 4 not matching), the lease id, used
// as a decimal string, for seats full the ms until the first seat frees,
// and the lease replaced ("" for none) with its end in ms (0 for none).
const takeLeasesLua = leaseLib + `
local hw, seats, limit, check = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[7] == '1'
local req = ARGV[9]
local out = {}
local firstItem = 12

if req ~= '' then
  forget(ARGV[10])
  if redis.call('ZSCORE', KEYS[7], req) then
    return {-1}
  end
end

local revoked = redis.call('GET', KEYS[3])
local at = redis.call('PEXPIRETIME', KEYS[1])
if at >= 0 and now > at then
  redis.call('DEL', KEYS[1])
end
local used = redis.call('GET', KEYS[1]) or '0'
if revoked and tonumber(revoked) > now then
  for i = firstItem, #ARGV, 4 do
    out[#out + 1] = 1; out[#out + 1] = ''; out[#out + 1] = used; out[#out + 1] = 0
    out[#out + 1] = ''; out[#out + 1] = 0
  end
  return out
end

local items, _ = device(hw, not check)
local holds = #items > 0
local byItem = {}
for i = 1, #items, 2 do byItem[items[i]] = i end
local pruned, changed, charged = false, false, false
-- What undoing this request restores (see the records above).
local undo, total = {}, 0

for i = firstItem, #ARGV, 4 do
  local item, renew, id, cost = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local outcome, retry, replaced, replacedUntil = 0, 0, '', 0
  if renew ~= '' then
    local l = lease(renew)
    if not l or l[2] ~= item or l[3] ~= hw then
      outcome = 4
    end
    id = renew
  elseif not holds and seats > 0 then
    if not pruned and not check then
      prune()
      pruned = true
    end
    if redis.call('ZCOUNT', KEYS[5], '(' .. ARGV[1], '+inf') >= seats then
      outcome = 3
      local first = redis.call('ZRANGEBYSCORE', KEYS[5], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
      retry = tonumber(first[2]) - now
    end
  end
  if outcome == 0 and limit >= 0 and tonumber(cost) > limit - tonumber(used) then
    outcome = 2
  end
  if outcome == 0 then
    holds = true
    if limit >= 0 then
      if check then
        used = string.format('%d', tonumber(used) + tonumber(cost))
      else
        redis.call('INCRBY', KEYS[1], cost)
        used = redis.call('GET', KEYS[1])
        charged = true
        total = total + tonumber(cost)
      end
    end
    if not check then
      local before = redis.call('HGET', KEYS[4], id) or ''
      local oldID, oldRec = '', ''
      local at = byItem[item]
      if at then
        if items[at + 1] ~= id then
          -- A new lease of an item the device leases replaces that lease.
          oldID = items[at + 1]
          oldRec = redis.call('HGET', KEYS[4], oldID) or ''
          local l = lease(oldID)
          if l then
            replaced, replacedUntil = oldID, tonumber(l[1])
          end
          redis.call('HDEL', KEYS[4], oldID)
        end
        items[at + 1] = id
      else
        items[#items + 1] = item
        items[#items + 1] = id
        byItem[item] = #items - 1
      end
      local rec = pack({ARGV[5], item, hw, ARGV[8]})
      redis.call('HSET', KEYS[4], id, rec)
      changed = true
      if req ~= '' then
        for _, v in ipairs({item, id, rec, before, oldID, oldRec}) do
          undo[#undo + 1] = v
        end
      end
    end
  else
    id = ''
  end
  out[#out + 1] = outcome; out[#out + 1] = id; out[#out + 1] = used; out[#out + 1] = retry
  out[#out + 1] = replaced; out[#out + 1] = replacedUntil
end

if req ~= '' and (charged or changed) then
  redis.call('ZADD', KEYS[7], ARGV[1], req)
  table.insert(undo, 1, hw)
  table.insert(undo, 1, string.format('%d', total))
  redis.call('HSET', KEYS[8], req, pack(undo))
  extend(KEYS[7], ARGV[11])
  extend(KEYS[8], ARGV[11])
end

if charged then
  extend(KEYS[1], ARGV[6])
  redis.call('SET', KEYS[2], ARGV[4], 'KEEPTTL')
  extend(KEYS[2], ARGV[6])
end
if changed then
  redis.call('HSET', KEYS[6], hw, pack(items))
  local _, last = device(hw, false)
  redis.call('ZADD', KEYS[5], string.format('%d', last), hw)
  local keep = ARGV[6]
  if keep ~= '0' and tonumber(keep) < tonumber(ARGV[5]) then keep = ARGV[5] end
  for k = 4, 6 do extend(KEYS[k], keep) end
end
return out
`

// releaseLeaseLua ends the lease ARGV[2] at ARGV[1] (now ms) and frees its
// device's seat when that was the device's last lease.
//
// Returns {} when no live lease has that id, else its record {until ms,
// item, hw[, issuer]}.
const releaseLeaseLua = leaseLib + `
local id = ARGV[2]
local l = lease(id)
if not l then
  return {}
end
redis.call('HDEL', KEYS[4], id)
local hw = l[3]
local items = unpack_(redis.call('HGET', KEYS[6], hw))
for i = 1, #items, 2 do
  if items[i + 1] == id then
    table.remove(items, i + 1)
    table.remove(items, i)
    break
  end
end
if #items == 0 then
  redis.call('HDEL', KEYS[6], hw)
  redis.call('ZREM', KEYS[5], hw)
else
  redis.call('HSET', KEYS[6], hw, pack(items))
  local _, last = device(hw, true)
  if last > 0 then
    redis.call('ZADD', KEYS[5], string.format('%d', last), hw)
  end
end
return l
`

// undoLeasesLua is the whole of a policy.LeaseUndo.
//
// ARGV: 1 now ms, 2 request id, 3 the ms before which request ids are
// forgotten, 4 the ms until which a tombstone must live.
//
// A request id not seen is left as a tombstone, so its take counts
// nothing should it come later. One seen with an undo record is taken
// back: its credits are given back (when the counter still exists), and
// each lease it wrote, unless a later request changed it since, gets back
// what it had: a renewed lease its earlier end, a new lease is dropped and
// the lease it replaced, if still within its end, put back. The device's
// seat follows its leases. Returns 1 when a take was taken back, else 0.
const undoLeasesLua = leaseLib + `
local req = ARGV[2]
forget(ARGV[3])
if not redis.call('ZSCORE', KEYS[7], req) then
  redis.call('ZADD', KEYS[7], ARGV[1], req)
  extend(KEYS[7], ARGV[4])
  return 0
end
local rec = redis.call('HGET', KEYS[8], req)
if not rec then
  return 0
end
redis.call('HDEL', KEYS[8], req)
local r = unpack_(rec)
if r[1] ~= '0' and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DECRBY', KEYS[1], r[1])
end
local hw = r[2]
local items = unpack_(redis.call('HGET', KEYS[6], hw))
local slot = {}
for i = 1, #items, 2 do slot[items[i]] = items[i + 1] end
for i = 3, #r, 6 do
  local item, id, wrote, before, oldID, oldRec = r[i], r[i + 1], r[i + 2], r[i + 3], r[i + 4], r[i + 5]
  if redis.call('HGET', KEYS[4], id) == wrote then
    if before ~= '' then
      redis.call('HSET', KEYS[4], id, before)
    else
      redis.call('HDEL', KEYS[4], id)
      if slot[item] == id then
        slot[item] = nil
        if oldRec ~= '' and tonumber(unpack_(oldRec)[1]) > now and redis.call('HEXISTS', KEYS[4], oldID) == 0 then
          redis.call('HSET', KEYS[4], oldID, oldRec)
          slot[item] = oldID
        end
      end
    end
  end
end
local keep = {}
for i = 1, #items, 2 do
  if slot[items[i]] then
    keep[#keep + 1] = items[i]; keep[#keep + 1] = slot[items[i]]
  end
end
settle(hw, keep)
return 1
`

// liveLeasesLua lists the live leases at ARGV[1] (now ms), read only:
// a flat list of id, until ms, item, hw, issuer.
const liveLeasesLua = leaseLib + `
local out = {}
local hws = redis.call('ZRANGEBYSCORE', KEYS[5], '(' .. ARGV[1], '+inf')
for _, hw in ipairs(hws) do
  local items = device(hw, false)
  for i = 1, #items, 2 do
    local l = lease(items[i + 1])
    out[#out + 1] = items[i + 1]; out[#out + 1] = l[1]; out[#out + 1] = l[2]; out[#out + 1] = l[3]
    out[#out + 1] = l[4] or ''
  end
end
return out
`

// The lease scripts, hashed once.
var (
	takeLeasesScript   = redis.NewScript(takeLeasesLua)
	releaseLeaseScript = redis.NewScript(releaseLeaseLua)
	undoLeasesScript   = redis.NewScript(undoLeasesLua)
	liveLeasesScript   = redis.NewScript(liveLeasesLua)
)

func init() {
	scriptSource[takeLeasesScript] = takeLeasesLua
	scriptSource[releaseLeaseScript] = releaseLeaseLua
	scriptSource[undoLeasesScript] = undoLeasesLua
}
