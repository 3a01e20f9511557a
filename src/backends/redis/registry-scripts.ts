import { READ_FIELDS_LUA } from './record-fields.js';
import { lua } from './scripts.js';

/**
 * The registry's scripts. Each touches one slot: a session's (the record, in its meta HASH), a
 * tenant's (the list indexes) or the sweep index's. See docs/redis.md, "Session registry".
 */

/**
 * Registers a session: the record's fields go into its meta HASH unless a record is there
 * already. A transcript already stored under the key is adopted as it is; its usage state too,
 * unless ARGV[2] brings one, which then replaces it under a new token (ARGV[3]) so every
 * process's cached state stops matching.
 * KEYS: meta. ARGV: usage JSON ('' = keep), usage token, then field, value pairs.
 * Returns { 1, READ_FIELDS values... }, or { 0, createdAt, owner, forkedFrom, rid } of the
 * record that is there.
 */
export const INSERT_RECORD = lua(
  'insert_record',
  `
local meta = KEYS[1]
if redis.call('HEXISTS', meta, 'r:version') == 1 then
  local r = redis.call('HMGET', meta, 'r:createdAt', 'r:owner', 'r:forkedFrom', 'r:rid')
  return { 0, r[1], r[2], r[3], r[4] }
end
for i = 3, #ARGV, 2 do redis.call('HSET', meta, ARGV[i], ARGV[i + 1]) end
if ARGV[1] ~= '' then redis.call('HSET', meta, 'usage', ARGV[1], 'ut', ARGV[2]) end
-- A delete leaves meta holding its floor for a while, with a TTL a record must not inherit.
redis.call('PERSIST', meta)
local reply = redis.call('HMGET', meta, unpack(${READ_FIELDS_LUA}))
table.insert(reply, 1, 1)
return reply
`,
);

/**
 * Compare-and-set update of a record: applies the field, value pairs if `r:version` is still
 * ARGV[1], and bumps it. Appends never touch `r:version`, so they never make an update fail.
 * KEYS: meta. ARGV: expected version, then field, value pairs.
 * Returns the READ_FIELDS values as written, or nil when the record is gone or has moved on.
 */
export const UPDATE_RECORD = lua(
  'update_record',
  `
local meta = KEYS[1]
local version = tonumber(redis.call('HGET', meta, 'r:version'))
if version == nil or version ~= tonumber(ARGV[1]) then return nil end
for i = 2, #ARGV, 2 do redis.call('HSET', meta, ARGV[i], ARGV[i + 1]) end
redis.call('HSET', meta, 'r:version', string.format('%d', version + 1))
return redis.call('HMGET', meta, unpack(${READ_FIELDS_LUA}))
`,
);

/**
 * A sweeper's arbiter for one session: marks it expired, as of its deadline, if it is live
 * (active, or failed: its last turn failed) and
 * its deadline is at or before ARGV[1]. Of several sweepers at once exactly one gets 1.
 * KEYS: meta. ARGV: now.
 * Returns { 1 | 0, status, expiresAt, purgeAt } (JSON, as stored after the call), or { -1 }
 * when there is no record.
 */
export const EXPIRE_RECORD = lua(
  'expire_record',
  `
local meta = KEYS[1]
local r = redis.call('HMGET', meta, 'r:version', 'r:status', 'r:expiresAt', 'r:purgeAt')
if not r[1] then return { -1 } end
local deadline = tonumber(r[3])
if (r[2] == '"active"' or r[2] == '"failed"') and deadline and deadline <= tonumber(ARGV[1]) then
  redis.call('HSET', meta, 'r:status', '"expired"', 'r:expiredAt', r[3],
    'r:version', string.format('%d', tonumber(r[1]) + 1))
  return { 1, '"expired"', r[3], r[4] }
end
return { 0, r[2], r[3], r[4] }
`,
);

/**
 * Puts a session into its tenant's list indexes: all, its owner's and its parent's forks, and
 * remembers in `registered` what it put there (rid, time, owner ZSET, forks ZSET), so a removal
 * takes out exactly that even once the record is gone. If `registered` holds another
 * registration of the id, the call does nothing and returns 0 unless ARGV[4] = '1' (force),
 * which first takes the other one out.
 * KEYS: registered, listAll, owner ZSET, [forks ZSET]. ARGV: id, rid, time, force.
 */
export const INDEX_SESSION = lua(
  'index_session',
  `
local id, rid, time = ARGV[1], ARGV[2], ARGV[3]
local entry = redis.call('HGET', KEYS[1], id)
if entry then
  local was, was_time, owner, forks = string.match(entry, '^([^\\n]*)\\n([^\\n]*)\\n([^\\n]*)\\n([^\\n]*)$')
  if was ~= rid and ARGV[4] ~= '1' then return 0 end
  local member = was_time .. id
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZREM', owner, member)
  if forks ~= '' then redis.call('ZREM', forks, member) end
end
local member = time .. id
redis.call('ZADD', KEYS[2], 0, member)
redis.call('ZADD', KEYS[3], 0, member)
if KEYS[4] then redis.call('ZADD', KEYS[4], 0, member) end
redis.call('HSET', KEYS[1], id, rid .. '\\n' .. time .. '\\n' .. KEYS[3] .. '\\n' .. (KEYS[4] or ''))
return 1
`,
);

/**
 * The sweep index holds, for each session that may need a sweeper, a score at or before the
 * time it does: its expiresAt in `expiring` while active, its purgeAt in `purging` once expired.
 * Scores may be early (the sweeper then looks, finds nothing due and moves the score to the
 * right time), never late. So writers only ever lower scores or add members (ZADD LT), which
 * is always safe, and void any sweeper's claim on the member, so that a sweeper that read the
 * record before the write cannot raise the score or remove the member after it.
 * KEYS: expiring, purging, claims. ARGV: member, expiring score ('' = none), purging score.
 */
export const SWEEP_HINT = lua(
  'sweep_hint',
  `
for i = 1, #ARGV, 3 do
  local member = ARGV[i]
  if ARGV[i + 1] ~= '' then
    redis.call('ZADD', KEYS[1], 'LT', ARGV[i + 1], member)
    redis.call('HDEL', KEYS[3], 'e' .. member)
  end
  if ARGV[i + 2] ~= '' then
    redis.call('ZADD', KEYS[2], 'LT', ARGV[i + 2], member)
    redis.call('HDEL', KEYS[3], 'p' .. member)
  end
end
return 1
`,
);

/**
 * Claims up to ARGV[3] members of one index whose score is at or before ARGV[2]: each moves to
 * ARGV[4] (now plus a lease, so other sweepers pass over it meanwhile, and it comes back if this
 * sweeper dies) and is marked with the claim token ARGV[5].
 * KEYS: expiring, purging, claims. ARGV: 'e' or 'p', now, limit, lease end, token.
 * Returns the claimed members.
 */
export const SWEEP_CLAIM = lua(
  'sweep_claim',
  `
local kind = ARGV[1]
local index = kind == 'e' and KEYS[1] or KEYS[2]
local due = redis.call('ZRANGE', index, '-inf', ARGV[2], 'BYSCORE', 'LIMIT', 0, ARGV[3])
for _, member in ipairs(due) do
  redis.call('ZADD', index, 'XX', ARGV[4], member)
  redis.call('HSET', KEYS[3], kind .. member, ARGV[5])
end
return due
`,
);

/**
 * What a sweeper learnt about its claimed members: for each, remove it ('r') or move it to the
 * session's real due time ('s', score), but only while the claim is still this sweeper's (no
 * writer has hinted since). Then any hints, as SWEEP_HINT.
 * KEYS: expiring, purging, claims.
 * ARGV: 'e' or 'p', token, count, then count (member, action, score) triples, then hint triples.
 */
export const SWEEP_FINISH = lua(
  'sweep_finish',
  `
local kind, token = ARGV[1], ARGV[2]
local index = kind == 'e' and KEYS[1] or KEYS[2]
local last = 3 + 3 * tonumber(ARGV[3])
for i = 4, last, 3 do
  local member, field = ARGV[i], kind .. ARGV[i]
  if redis.call('HGET', KEYS[3], field) == token then
    if ARGV[i + 1] == 'r' then
      redis.call('ZREM', index, member)
    else
      redis.call('ZADD', index, ARGV[i + 2], member)
    end
    redis.call('HDEL', KEYS[3], field)
  end
end
for i = last + 1, #ARGV, 3 do
  local member = ARGV[i]
  if ARGV[i + 1] ~= '' then
    redis.call('ZADD', KEYS[1], 'LT', ARGV[i + 1], member)
    redis.call('HDEL', KEYS[3], 'e' .. member)
  end
  if ARGV[i + 2] ~= '' then
    redis.call('ZADD', KEYS[2], 'LT', ARGV[i + 2], member)
    redis.call('HDEL', KEYS[3], 'p' .. member)
  end
end
return 1
`,
);

/**
 * Takes removed sessions out of the sweep index, with any claims on them.
 * KEYS: expiring, purging, claims. ARGV: members.
 */
export const SWEEP_FORGET = lua(
  'sweep_forget',
  `
for _, member in ipairs(ARGV) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZREM', KEYS[2], member)
  redis.call('HDEL', KEYS[3], 'e' .. member, 'p' .. member)
end
return 1
`,
);
