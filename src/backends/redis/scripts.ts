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
 * Deduplication and append of one batch. ARGV from `first` on holds uuid, json pairs ('' = no
 * uuid). An entry is kept if it has no uuid, or its uuid is neither stored nor earlier in the
 * batch (first wins). Two set commands per batch rather than one per entry, and RPUSH in slices
 * (Lua's unpack() cannot spread more than a few thousand values); all inside one script, so the
 * batch still lands contiguously. Returns the number kept and one '1'/'0' flag per entry.
 */
const APPEND_FRESH = `
local function each_slice(values, run)
  for i = 1, #values, 1000 do run(unpack(values, i, math.min(i + 999, #values))) end
end
local function append_fresh(list, ids, first)
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
  each_slice(added, function(...) redis.call('SADD', ids, ...) end)
  each_slice(fresh, function(...) redis.call('RPUSH', list, ...) end)
  return #fresh, table.concat(flags)
end
`;

/**
 * Step 1 of a main-transcript append.
 * KEYS: meta, main list, main ids.
 * ARGV: sm, sw, summary of a fold this process has not offered yet ('', '', '' if none); the sm
 * of the fold this process already holds ('' if none); then uuid1, json1, uuid2, json2, ...
 * ('' = no uuid).
 * The offered fold becomes the session's fold base if it belongs to this incarnation of the
 * session (born <= sm <= mtime: not from before a delete) and is newer than the stored base.
 * Every fold covers a whole prefix of the transcript, so the newest fold includes everything an
 * older one did: keeping the maximum loses no update, whatever order writers arrive in.
 * Returns { mtime, length, sw, sm, sum, flags, unfolded... }: the session's mtime and main
 * length after the write, the fold base (sw = entries it covers, sm = its mtime, sum = its JSON,
 * nil when there is none or the caller already holds that fold), one '1'/'0' per argument entry
 * (stored or skipped as duplicate), then the stored entries in [sw, first position of this batch)
 * that the base does not cover. With the batch itself, those are exactly what the caller must
 * fold to bring the summary to `length`.
 */
export const APPEND_MAIN = lua(
  'append_main',
  `${NEXT_MTIME}${APPEND_FRESH}
local meta, list = KEYS[1], KEYS[2]
local m = redis.call('HMGET', meta, 'mtime', 'born', 'floor', 'sw', 'sm', 'sum')
local mtime, floor = tonumber(m[1]), tonumber(m[3])
local sw, sm, sum = tonumber(m[4]) or 0, m[5], m[6]
if ARGV[1] ~= '' then
  local at = tonumber(ARGV[1])
  if mtime and at <= mtime and at >= (tonumber(m[2]) or 0) and at > (tonumber(sm) or -1) then
    redis.call('HSET', meta, 'sm', ARGV[1], 'sw', ARGV[2], 'sum', ARGV[3])
    sw, sm, sum = tonumber(ARGV[2]), ARGV[1], ARGV[3]
  end
end
local start = redis.call('LLEN', list)
local stored, flags = append_fresh(list, KEYS[3], 5)
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
end
if sm == ARGV[4] then sum = false end
local reply = { mtime or 0, start + stored, sw, tonumber(sm) or 0, sum, flags }
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
local stored = append_fresh(KEYS[1], KEYS[2], 2)
if stored > 0 then redis.call('HSET', KEYS[3], ARGV[1], KEYS[1]) end
return stored
`,
);

/**
 * Step 2: publishes sessions' mtimes and summaries to their project's indexes. For each
 * (sessionId, mtime, summary) the mtime and the summary are written together, and only if newer
 * than what is listed and than a recent delete of that session (its gone marker). The same
 * keep-the-newest rule as the fold base, so publishes may arrive in any order, and the appends of
 * one project that reach this step together share one call.
 * KEYS: sessions, summaries, then one gone marker per session.
 * ARGV: sessionId1, mtime1, summary1, sessionId2, ...
 */
export const PUBLISH_SUMMARIES = lua(
  'publish_summaries',
  `
local published = 0
for i = 1, #ARGV / 3 do
  local id, text, json = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
  local at = tonumber(text)
  if at > (tonumber(redis.call('GET', KEYS[i + 2])) or -1)
    and at > (tonumber(redis.call('ZSCORE', KEYS[1], id)) or -1) then
    redis.call('ZADD', KEYS[1], text, id)
    redis.call('HSET', KEYS[2], id, json)
    published = published + 1
  end
end
return published
`,
);

/**
 * Step 1 of deleting a session: removes its transcripts, dedup sets and meta. If the session
 * existed, meta is left holding only `floor`, a stamp after every mtime the session had, for
 * ARGV[1] ms, so a re-created session's mtimes (and its `born`) start above everything the old
 * one had: its publishes pass the gone marker, and folds of the old transcript fail `born`.
 * The subagent LIST names come from the subkeys HASH; they share this session's hash tag, so
 * the script stays on one slot.
 * KEYS: meta, main list, main ids, subkeys. ARGV: fence ms. Returns { existed, stamp }.
 */
export const DELETE_SESSION = lua(
  'delete_session',
  `${NEXT_MTIME}
local meta = KEYS[1]
local existed = redis.call('EXISTS', meta) == 1
local m = redis.call('HMGET', meta, 'mtime', 'floor')
local subs = redis.call('HVALS', KEYS[4])
for i = 1, #subs do redis.call('UNLINK', subs[i], subs[i] .. '${IDS_SUFFIX}') end
redis.call('UNLINK', meta, KEYS[2], KEYS[3], KEYS[4])
if not existed then
  -- Nothing can be in flight for a session without meta; only a stale listing may remain,
  -- and it is older than this millisecond.
  return { 0, next_mtime(0) - 1 }
end
local stamp = next_mtime(math.max(tonumber(m[1]) or 0, tonumber(m[2]) or 0))
redis.call('HSET', meta, 'floor', string.format('%d', stamp))
redis.call('PEXPIRE', meta, ARGV[1])
return { 1, stamp }
`,
);

/**
 * Step 2 of deleting a session: drops it from the project's indexes unless a newer incarnation
 * already published, and (if it existed) leaves a gone marker so a late publish from before the
 * delete cannot list it again.
 * KEYS: sessions, summaries, gone marker. ARGV: sessionId, stamp, fence ms, '1' to mark.
 */
export const UNLIST_SESSION = lua(
  'unlist_session',
  `
local stamp = tonumber(ARGV[2])
if (tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1])) or -1) <= stamp then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
if ARGV[4] == '1' and (tonumber(redis.call('GET', KEYS[3])) or -1) < stamp then
  redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
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
