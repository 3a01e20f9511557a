/**
 * Naive stores for comparison only: what a team writes by hand in a few lines (append rows or
 * list items, no deduplication, no summaries, listing by scanning). They show what sessionhub's
 * guarantees cost, and what the SDK's listSessions() costs without store-maintained summaries.
 */
import type { SessionKey, SessionStore, SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import type { Redis } from 'ioredis';
import type pg from 'pg';

export async function naivePostgresStore(pool: pg.Pool, schema: string): Promise<SessionStore> {
  await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await pool.query(`CREATE TABLE ${schema}.lines (
    id bigserial PRIMARY KEY, project text NOT NULL, session text NOT NULL,
    subpath text NOT NULL DEFAULT '', entry text NOT NULL, at timestamptz NOT NULL DEFAULT now())`);
  await pool.query(`CREATE INDEX ON ${schema}.lines (project, session, subpath, id)`);
  const table = `${schema}.lines`;
  return {
    async append(key: SessionKey, entries: SessionStoreEntry[]) {
      if (entries.length === 0) return;
      const values = entries.map((_e, i) => `($1, $2, $3, $${i + 4})`).join(', ');
      await pool.query(`INSERT INTO ${table} (project, session, subpath, entry) VALUES ${values}`, [
        key.projectKey,
        key.sessionId,
        key.subpath ?? '',
        ...entries.map((e) => JSON.stringify(e)),
      ]);
    },
    async load(key: SessionKey) {
      const { rows } = await pool.query<{ entry: string }>(
        `SELECT entry FROM ${table} WHERE project = $1 AND session = $2 AND subpath = $3 ORDER BY id`,
        [key.projectKey, key.sessionId, key.subpath ?? ''],
      );
      return rows.length > 0 ? rows.map((r) => JSON.parse(r.entry) as SessionStoreEntry) : null;
    },
    async listSessions(projectKey: string) {
      const { rows } = await pool.query<{ session: string; mtime: string }>(
        `SELECT session, floor(extract(epoch FROM max(at)) * 1000)::bigint AS mtime FROM ${table}
         WHERE project = $1 AND subpath = '' GROUP BY session`,
        [projectKey],
      );
      return rows.map((r) => ({ sessionId: r.session, mtime: Number(r.mtime) }));
    },
  };
}

export function naiveRedisStore(client: Redis, prefix: string): SessionStore {
  const list = (key: SessionKey) =>
    `${prefix}:${key.projectKey}:${key.sessionId}:${key.subpath ?? ''}`;
  return {
    async append(key: SessionKey, entries: SessionStoreEntry[]) {
      if (entries.length === 0) return;
      const multi = client.multi().rpush(list(key), ...entries.map((e) => JSON.stringify(e)));
      if (!key.subpath) multi.zadd(`${prefix}:${key.projectKey}:index`, Date.now(), key.sessionId);
      await multi.exec();
    },
    async load(key: SessionKey) {
      const lines = await client.lrange(list(key), 0, -1);
      return lines.length > 0 ? lines.map((l) => JSON.parse(l) as SessionStoreEntry) : null;
    },
    async listSessions(projectKey: string) {
      const flat = await client.zrange(`${prefix}:${projectKey}:index`, 0, -1, 'WITHSCORES');
      const out: Array<{ sessionId: string; mtime: number }> = [];
      for (let i = 0; i < flat.length; i += 2) {
        out.push({ sessionId: flat[i] as string, mtime: Number(flat[i + 1]) });
      }
      return out;
    },
  };
}
