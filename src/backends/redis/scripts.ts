import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { IDS_SUFFIX } from './keys.js';

/** A standalone connection or a Cluster: both route EVALSHA by the first key. */
export type RedisClient = Redis | Cluster;

export interface LuaScript {
  readonly name: string;
  readonly source: string;
  readonly sha: string;
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

/** A script with its SHA computed once, for runScript. */
export function lua(name: string, source: string): LuaScript {
  return { name, source, sha: createHash('sha1').update(source).digest('hex') };
}

/**
 * Runs a script by its SHA and sends the source only when the server does not know it yet
 * (after a restart, SCRIPT FLUSH, or on a Cluster node that never saw it). Nothing is
 * registered on the client, so a caller's client is left exactly as it was given.
 */
export function runScript(
  client: RedisClient,
  script: LuaScript,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  return client.evalsha(script.sha, keys.length, ...keys, ...args).catch((error: unknown) => {
    if (!isNoScript(error)) throw error;
    return client.eval(script.source, keys.length, ...keys, ...args);
  });
}

/**
 * mtime from the server clock: integer epoch ms, strictly after `prev` so two writes in one
 * millisecond (or a server clock that stepped back) still order. Scripts are replicated by
 * effects (Redis >= 5), so reading TIME before writing is allowed.
 */
const NEXT_MTIME = `
local function next_mtime(prev)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if prev >= now then return prev + 1 end
  return now
end
`;

/**
 * Deduplication and append of one batch, in two halves so that a main append can compare what
 * it would store with what its usage fold assumed before it writes anything. ARGV from `first`
 * on holds uuid, json pairs ('' = no uuid). An entry is kept if it has no uuid, or its uuid is
 * neither stored nor earlier in the batch (first wins). Two set commands per batch rather than
 * one per entry, and RPUSH in slices (Lua's unpack() cannot spread more than a few thousand
 * values); all inside one script, so the batch still lands contiguously. `select_fresh` returns
 * the entries to store, their new uuids and one '1'/'0' flag per entry.
 */
const APPEND_FRESH = `
local function each_slice(values, run)
  for i = 1, #values, 1000 do run(unpack(values, i, math.min(i + 999, #values))) end
end
local function select_fresh(ids, first)
  local uuids = {}
  for i = first, #ARGV, 2 do
    if ARGV[i] ~= '' then uuids[#uuids + 1] = ARGV[i] end
  end
  local seen, offset = {}, 0
  each_slice(uuids, function(...)
    local hits = redis.call('SMISMEMBER', ids, ...)
    for j = 1, #hits do
      if hits[j] == 1 then seen[uuids[offset + j]] = true end
    end
    offset = offset + #hits
  end)
  local fresh, flags, added = {}, {}, {}
  for i = first, #ARGV, 2 do
    local uuid = ARGV[i]
    if uuid ~= '' and seen[uuid] then
      flags[#flags + 1] = '0'
    else
      if uuid ~= '' then
        seen[uuid] = true
        added[#added + 1] = uuid
      end
      fresh[#fresh + 1] = ARGV[i + 1]
      flags[#flags + 1] = '1'
    end
  end
  return fresh, added, table.concat(flags)
end
local function store_fresh(list, ids, fresh, added)
  each_slice(added, function(...) redis.call('SADD', ids, ...) end)
  each_slice(fresh, function(...) redis.call('RPUSH', list, ...) end)
  return #fresh
end
`;

/**
 * Step 1 of a main-transcript append.
 * KEYS: meta, main list, main ids, charges.
 * ARGV: 1-3 sm, sw, summary of a fold this process has not offered yet ('', '', '' if none);
 * 4 the sm of the fold this process already holds ('' if none); 5 '1' when the append folds
 * usage, else ''; 6 the usage token the fold started from ('' = no state yet); 7 the flags the
 * fold assumed; 8 the folded usage state JSON ('' = unchanged); 9 its new token; 10 the
 * session's running charge after the fold, without its stamp ('' = nothing to charge; see
 * charges.ts); 11 how many stamps follow: pending records this process saw applied, to forget;
 * then those stamps; then uuid1, json1, uuid2, json2, ... ('' = no uuid).
 *
 * The offered fold becomes the session's fold base if it belongs to this incarnation of the
 * session (born <= sm <= mtime: not from before a delete) and is newer than the stored base.
 * Every fold covers a whole prefix of the transcript, so the newest fold includes everything an
 * older one did: keeping the maximum loses no update, whatever order writers arrive in.
 *
 * Usage (ARGV[5] = '1'): the caller folded the entries it expected to be stored onto the state
 * it last saw. The script stores nothing unless the state is still that one (same token) and
 * the entries it would store are exactly those (same flags); otherwise it returns
 * { 0, flags, token, state, running charge } and the caller folds again. So the state written
 * with the entries is always a fold of exactly the entries stored, and a retried batch (its
 * entries now duplicates) folds nothing twice. A chargeable fold of a registered session (one
 * with a record) writes its running charge, stamped with the append's mtime, in the same HSET
 * as the state, which the token also vouches for; a running charge of another day is set aside
 * as a pending record in `charges` first.
 *
 * Returns { 1, mtime, length, sw, sm, sum, flags, owner, pending, rid, running, unfolded... }:
 * the session's mtime and main length after the write, the fold base (sw = entries it covers,
 * sm = its mtime, sum = its JSON, nil when there is none or the caller already holds that
 * fold), one '1'/'0' per argument entry (stored or skipped as duplicate), the record's owner and
 * rid (JSON, nil without a record), the pending records ({ stamp1, record1, ... }), the running
 * charge (nil if none), then the stored entries in [sw, first position of this batch) that the
 * base does not cover. With the batch itself, those are exactly what the caller must fold to
 * bring the summary to `length`.
 */
export const APPEND_MAIN = lua(
  'append_main',
  `${NEXT_MTIME}${APPEND_FRESH}
local meta, list, charges = KEYS[1], KEYS[2], KEYS[4]
local m = redis.call('HMGET', meta, 'mtime', 'born', 'floor', 'sw', 'sm', 'sum', 'ut', 'r:version',
  'r:owner', 'r:rid', 'dc')
local mtime, floor = tonumber(m[1]), tonumber(m[3])
local sw, sm, sum = tonumber(m[4]) or 0, m[5], m[6]
if ARGV[1] ~= '' then
  local at = tonumber(ARGV[1])
  if mtime and at <= mtime and at >= (tonumber(m[2]) or 0) and at > (tonumber(sm) or -1) then
    redis.call('HSET', meta, 'sm', ARGV[1], 'sw', ARGV[2], 'sum', ARGV[3])
    sw, sm, sum = tonumber(ARGV[2]), ARGV[1], ARGV[3]
  end
end
local forget = tonumber(ARGV[11])
local fresh, added, flags = select_fresh(KEYS[3], 12 + forget)
if ARGV[5] == '1' then
  local token = m[7] or ''
  if token ~= ARGV[6] or flags ~= ARGV[7] then
    local now = redis.call('HMGET', meta, 'usage', 'dc')
    return { 0, flags, token, now[1] or '', now[2] or '' }
  end
end
local start = redis.call('LLEN', list)
local stored = store_fresh(list, KEYS[3], fresh, added)
local running = m[11]
if stored > 0 then
  -- floor, left by a delete, keeps a re-created session's mtimes above the old session's.
  local stamp = next_mtime(math.max(mtime or 0, floor or 0))
  local text = string.format('%d', stamp)
  if mtime == nil then
    redis.call('HSET', meta, 'mtime', text, 'born', text)
    if floor then
      redis.call('HDEL', meta, 'floor')
      redis.call('PERSIST', meta)
    end
  else
    redis.call('HSET', meta, 'mtime', text)
  end
  mtime = stamp
  if ARGV[5] == '1' and ARGV[8] ~= '' then
    -- Only a registered session (one with a record) is charged.
    if ARGV[10] ~= '' and m[8] then
      if running then
        -- A turn counted on another day: that day's total waits in charges until published.
        local was, day, figures = string.match(running, '^(%d+) (%S+) (.*)$')
        if day ~= string.match(ARGV[10], '^%S+') then
          redis.call('HSET', charges, was, 's ' .. (m[10] or '""') .. ' ' .. day .. ' ' .. figures)
        end
      end
      running = text .. ' ' .. ARGV[10]
      redis.call('HSET', meta, 'usage', ARGV[8], 'ut', ARGV[9], 'dc', running)
    else
      redis.call('HSET', meta, 'usage', ARGV[8], 'ut', ARGV[9])
    end
  end
end
if forget > 0 then redis.call('HDEL', charges, unpack(ARGV, 12, 11 + forget)) end
if sm == ARGV[4] then sum = false end
local reply = { 1, mtime or 0, start + stored, sw, tonumber(sm) or 0, sum, flags, m[9],
  redis.call('HGETALL', charges), m[10], running }
if sw < start then
  local unfolded = redis.call('LRANGE', list, sw, start - 1)
  for i = 1, #unfolded do reply[#reply + 1] = unfolded[i] end
end
return reply
`,
);

/**
 * A subagent transcript append: deduplicated and contiguous like the main one, but it feeds no
 * summary and no mtime (subagent-only sessions are not listed).
 * KEYS: sub list, sub ids, subkeys. ARGV: subpath, uuid1, json1, ...
 */
export const APPEND_SUB = lua(
  'append_sub',
  `${APPEND_FRESH}
local fresh, added = select_fresh(KEYS[2], 2)
local stored = store_fresh(KEYS[1], KEYS[2], fresh, added)
if stored > 0 then redis.call('HSET', KEYS[3], ARGV[1], KEYS[1]) end
return stored
`,
);

/**
 * Step 2: publishes sessions' mtimes and summaries to their project's indexes, and their daily
 * usage. For each (sessionId, mtime, summary) the mtime and the summary are written together,
 * and only if newer than what is listed and than a recent delete of that session (its gone
 * marker). The same keep-the-newest rule as the fold base, so publishes may arrive in any
 * order, and the appends of one project that reach this step together share one call.
 *
 * Spends (a registration's total of a day, see charges.ts) follow the same rule: a field of the
 * owner's spend HASH of the day is set only if the value's stamp is above the one there; a new
 * field also enters the owner in the day's owners SET and the day in `days`. Charges (the
 * increments earlier versions left pending) come oldest first and are added only if their stamp
 * is above the session's mark in `charged` (the newest stamp applied) and its gone marker.
 *
 * KEYS: sessions, summaries, charged, days, one gone marker per session, then the HASHes and
 * SETs the charges and spends name.
 * ARGV: session count, then per session: sessionId, mtime, summary ('' = none), owner, charge
 * count, then per charge: stamp, KEYS index of its day HASH, day, and its six figures; then
 * spend count, then per spend: KEYS index of its spend HASH, KEYS index of its owners SET, day,
 * rid, value (stamp and six figures).
 */
export const PUBLISH = lua(
  'publish',
  `
local fields = { 'c:', 't:', 'i:', 'o:', 'r:', 'w:' }
local at, published, days, listed = 2, 0, {}, {}
for i = 1, tonumber(ARGV[1]) do
  local id, text, json, owner = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  local count = tonumber(ARGV[at + 4])
  at = at + 5
  local gone = tonumber(redis.call('GET', KEYS[i + 4])) or -1
  if json ~= '' then
    local mtime = tonumber(text)
    if mtime > gone and mtime > (tonumber(redis.call('ZSCORE', KEYS[1], id)) or -1) then
      redis.call('ZADD', KEYS[1], text, id)
      redis.call('HSET', KEYS[2], id, json)
      published = published + 1
    end
  end
  if count > 0 then
    local mark = math.max(gone, tonumber(redis.call('HGET', KEYS[3], id)) or -1)
    local newest = nil
    for c = 1, count do
      local stamp = ARGV[at]
      if tonumber(stamp) > mark then
        local day = KEYS[tonumber(ARGV[at + 1])]
        if not days[day] then
          redis.call('ZADD', KEYS[4], 'NX', 0, ARGV[at + 2])
          days[day] = true
        end
        for f = 1, 6 do redis.call('HINCRBY', day, fields[f] .. owner, ARGV[at + 2 + f]) end
        mark, newest = tonumber(stamp), stamp
      end
      at = at + 9
    end
    if newest then redis.call('HSET', KEYS[3], id, newest) end
  end
  for s = 1, tonumber(ARGV[at]) do
    local spend, owners = KEYS[tonumber(ARGV[at + 1])], KEYS[tonumber(ARGV[at + 2])]
    local day, rid, value = ARGV[at + 3], ARGV[at + 4], ARGV[at + 5]
    at = at + 5
    local held = redis.call('HGET', spend, rid)
    if not held then
      redis.call('HSET', spend, rid, value)
      redis.call('SADD', owners, owner)
      if not listed[day] then
        redis.call('ZADD', KEYS[4], 'NX', 0, day)
        listed[day] = true
      end
    elseif tonumber(string.match(held, '^%d+')) < tonumber(string.match(value, '^%d+')) then
      redis.call('HSET', spend, rid, value)
    end
  end
  at = at + 1
end
return published
`,
);

/**
 * Step 1 of deleting a session: removes its transcripts, dedup sets, meta (with the record) and
 * charges. If the session existed, meta is left holding only `floor`, a stamp after every mtime
 * the session had, for ARGV[1] ms (unless purging, see removal.ts), so a re-created session's
 * mtimes (and its `born`) start above everything the old one had: its publishes pass the gone
 * marker, and folds of the old transcript fail `born`. The subagent LIST names come from the
 * subkeys HASH; they share this session's hash tag, so the script stays on one slot.
 *
 * Nothing is deleted while daily usage is not known to be published (see charges.ts): pending
 * records, or a running charge whose stamp the caller does not name. The script returns them
 * instead, and the caller publishes them and calls again naming their stamps. Deleting never
 * drops spend.
 *
 * KEYS: meta, main list, main ids, subkeys, charges.
 * ARGV: fence ms; mode: 'any' (the store's delete), 'record' (only if a record exists: the
 * registry's remove) or 'purge' (only if the record is expired and its purgeAt is at or before
 * ARGV[3], and no fence is left); now, for 'purge'; then stamps of records and of the running
 * charge known published.
 * Returns one of
 *   { 0, status, expiresAt, purgeAt }   not deleted: no record ('record', 'purge'; status nil)
 *                                       or not due ('purge')
 *   { 2, owner, rid, running, stamp1, record1, ... }
 *                                       not deleted: daily usage to publish (owner and rid JSON,
 *                                       running '' if none or named)
 *   { 1, existed, stamp, rid, tenant }  deleted; rid and tenant (JSON) nil without a record
 */
export const DELETE_SESSION = lua(
  'delete_session',
  `${NEXT_MTIME}
local meta, charges, mode = KEYS[1], KEYS[5], ARGV[2]
if #ARGV > 3 then redis.call('HDEL', charges, unpack(ARGV, 4)) end
local r = redis.call('HMGET', meta, 'r:version', 'r:status', 'r:expiresAt', 'r:purgeAt', 'r:rid',
  'r:tenant', 'r:owner', 'mtime', 'floor', 'dc')
if mode ~= 'any' then
  if not r[1] then return { 0 } end
  if mode == 'purge' then
    local purge_at = tonumber(r[4])
    if r[2] ~= '"expired"' or not purge_at or purge_at > tonumber(ARGV[3]) then
      return { 0, r[2], r[3], r[4] }
    end
  end
end
local pending = redis.call('HGETALL', charges)
local running = r[10] or ''
if running ~= '' then
  local stamp = string.match(running, '^%d+')
  for i = 4, #ARGV do
    if ARGV[i] == stamp then
      running = ''
      break
    end
  end
end
if #pending > 0 or running ~= '' then
  table.insert(pending, 1, running)
  table.insert(pending, 1, r[5] or '')
  table.insert(pending, 1, r[7] or '')
  table.insert(pending, 1, 2)
  return pending
end
local existed = redis.call('EXISTS', meta) == 1
local subs = redis.call('HVALS', KEYS[4])
for i = 1, #subs do redis.call('UNLINK', subs[i], subs[i] .. '${IDS_SUFFIX}') end
redis.call('UNLINK', meta, KEYS[2], KEYS[3], KEYS[4])
if not existed then
  -- Nothing can be in flight for a session without meta; only a stale listing may remain,
  -- and it is older than this millisecond.
  return { 1, 0, next_mtime(0) - 1 }
end
local stamp = next_mtime(math.max(tonumber(r[8]) or 0, tonumber(r[9]) or 0))
if mode ~= 'purge' then
  redis.call('HSET', meta, 'floor', string.format('%d', stamp))
  redis.call('PEXPIRE', meta, ARGV[1])
end
return { 1, 1, stamp, r[5], r[6] }
`,
);

/**
 * Step 2 of deleting sessions of one project: drops each from the project's indexes unless a
 * newer incarnation already published, and (if asked) leaves a gone marker so a late publish
 * from before the delete cannot list it again. Also drops it from the registry's list indexes
 * (if what they hold is this registration, the rid; '' drops whatever they hold) and forgets
 * what of its charges is in daily usage: the gone marker refuses its old totals from now on.
 * KEYS: sessions, summaries, registered, listAll, charged, then one gone marker per session.
 * ARGV: fence ms, then per session: sessionId, stamp, '1' to mark, rid.
 */
export const UNLIST_SESSIONS = lua(
  'unlist_sessions',
  `
for i = 1, (#ARGV - 1) / 4 do
  local id, text, mark, wanted = ARGV[4 * i - 2], ARGV[4 * i - 1], ARGV[4 * i], ARGV[4 * i + 1]
  local stamp, gone = tonumber(text), KEYS[5 + i]
  if (tonumber(redis.call('ZSCORE', KEYS[1], id)) or -1) <= stamp then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
  end
  if mark == '1' and (tonumber(redis.call('GET', gone)) or -1) < stamp then
    redis.call('SET', gone, text, 'PX', ARGV[1])
  end
  local entry = redis.call('HGET', KEYS[3], id)
  if entry then
    -- rid, time, owner ZSET, forks ZSET (or ''), one per line: written by index_session.
    local rid, time, owner, forks = string.match(entry, '^([^\\n]*)\\n([^\\n]*)\\n([^\\n]*)\\n([^\\n]*)$')
    if wanted == '' or wanted == rid then
      local member = time .. id
      redis.call('ZREM', KEYS[4], member)
      redis.call('ZREM', owner, member)
      if forks ~= '' then redis.call('ZREM', forks, member) end
      redis.call('HDEL', KEYS[3], id)
    end
  end
  redis.call('HDEL', KEYS[5], id)
end
return 1
`,
);

/** Deletes one subagent transcript. KEYS: subkeys, sub list, sub ids. ARGV: subpath. */
export const DELETE_SUB = lua(
  'delete_sub',
  `
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('UNLINK', KEYS[2], KEYS[3])
return 1
`,
);
