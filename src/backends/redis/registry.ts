import { randomBytes } from 'node:crypto';
import type { DailyUsage } from '../../core/daily-usage.js';
import { closedError, SessionHubError } from '../../core/errors.js';
import {
  compareForListing,
  effectiveStatus,
  isDueToExpire,
  isDueToPurge,
  isLive,
  type ListableSession,
  matchesQuery,
  type SessionQuery,
  type SessionStatus,
} from '../../core/session-record.js';
import { encodeUsageState } from '../../core/usage-codec.js';
import {
  type NewSession,
  type RegistryScope,
  type SessionPatch,
  type SessionRegistry,
  type StatusCounts,
  type StoredSession,
  type SweptSession,
  sessionExists,
  tenantProjectKey,
} from '../registry.js';
import { DayFigures, figureFields } from './charges.js';
import { guardRedis } from './failures.js';
import {
  LIST_TIME_DIGITS,
  listMember,
  listTime,
  type ProjectKeys,
  parseListMember,
  projectKeys,
  sessionKeys,
} from './keys.js';
import {
  decodeRecord,
  newRecordArgs,
  patchArgs,
  publicRecord,
  READ_FIELDS,
} from './record-fields.js';
import { EXPIRE_RECORD, INDEX_SESSION, INSERT_RECORD, UPDATE_RECORD } from './registry-scripts.js';
import { type RedisClient, runScript } from './scripts.js';
import { hintsOf, type SweepHint, SweepIndex, type SweepOutcome } from './sweep-index.js';
import type { RedisTranscriptStore } from './transcript-store.js';

/** The record fields listing filters read, in ListableSession order. */
const LISTABLE_FIELDS = [
  'r:tenant',
  'r:owner',
  'r:title',
  'r:tags',
  'r:status',
  'r:createdAt',
  'r:lastActiveAt',
  'r:expiresAt',
];

/** Members read per command when a listing or a count walks an index. */
const SCAN_BATCH = 1_000;

type Record = StoredSession & { rid: string };

/**
 * The session registry on Redis. A record lives in its session's meta HASH, beside the
 * transcript (see record-fields.ts), so usage is folded into it by the append script and a
 * delete takes it along. Three kinds of index find records without KEYS or SCAN:
 *
 * - per tenant (the slot of the tenant's transcript project): ZSETs of listing members, for the
 *   tenant, per owner and per fork parent, and `registered`, what the ZSETs hold per id;
 * - the sweep index (one slot): sessions by the time a sweeper may have to act on them.
 *
 * They live on other slots than the record, so no script updates both. The record is the truth
 * and the indexes follow it: list entries are written before the record (a crash leaves an
 * entry without a record, which readers skip), sweep hints are written before and after it and
 * may only be early (a sweeper that finds nothing due reschedules), and each removal step is
 * idempotent. See docs/redis.md, "Session registry".
 */
export class RedisRegistry implements SessionRegistry {
  private readonly sweep: SweepIndex;
  private closed = false;

  constructor(
    private readonly client: RedisClient,
    private readonly prefix: string,
    private readonly store: RedisTranscriptStore,
  ) {
    this.sweep = new SweepIndex(client, prefix);
  }

  close(): void {
    this.closed = true;
  }

  async insert(input: NewSession): Promise<StoredSession> {
    this.assertOpen();
    if (!Number.isSafeInteger(input.createdAt) || input.createdAt < 0) {
      throw new SessionHubError(
        'INVALID_INPUT',
        `createdAt must be whole epoch milliseconds, got ${input.createdAt}.`,
        { createdAt: input.createdAt },
      );
    }
    const { usage, ...session } = input;
    const rid = randomBytes(8).toString('hex');
    const project = this.project(input.tenant);
    const meta = this.meta(input.tenant, input.id);
    const hints = hintsOf(input);
    return this.guard('insert', async () => {
      // List entries and sweep hints first: a crash after them leaves entries readers skip,
      // never a record nobody lists or sweeps.
      const [indexed] = await Promise.all([
        this.index(project, input.id, rid, input.createdAt, input.owner, input.forkedFrom, false),
        this.sweep.hint([hints]),
      ]);
      const token = `reg.${rid}`;
      const reply = (await runScript(
        this.client,
        INSERT_RECORD,
        [meta],
        [usage ? encodeUsageState(usage) : '', usage ? token : '', ...newRecordArgs(session, rid)],
      )) as unknown[];
      if (reply[0] === 0) {
        if (indexed) {
          // Our entries may have displaced those of the record that is there: put its back.
          const [, createdAt, owner, forkedFrom, winner] = reply as string[];
          await this.index(
            project,
            input.id,
            JSON.parse(winner as string),
            JSON.parse(createdAt as string),
            JSON.parse(owner as string),
            JSON.parse(forkedFrom as string),
            true,
          );
        }
        throw sessionExists(input.id);
      }
      const record = decodeRecord(input.id, reply.slice(1) as Array<string | null>) as Record;
      if (usage) this.store.noteUsage(tenantProjectKey(input.tenant), input.id, token, usage);
      await Promise.all([
        // Another registration of this id held the list entries (a crashed insert, or the
        // loser of a race that indexed before us): the record decides, so they are ours now.
        indexed
          ? undefined
          : this.index(
              project,
              input.id,
              rid,
              input.createdAt,
              input.owner,
              input.forkedFrom,
              true,
            ),
        // Again after the write, in case a sweeper read the hint and then an older record.
        this.sweep.hint([hints]),
      ]);
      return publicRecord(record);
    });
  }

  async get(tenant: string, id: string): Promise<StoredSession | null> {
    this.assertOpen();
    const [record] = await this.guard('get', () => this.fetch(tenant, [id]));
    return record ? publicRecord(record) : null;
  }

  async update(
    tenant: string,
    id: string,
    expectedVersion: number,
    patch: SessionPatch,
  ): Promise<StoredSession | null> {
    this.assertOpen();
    const before = hintsBeforeUpdate(tenant, id, patch);
    return this.guard('update', async () => {
      if (before) await this.sweep.hint([before]);
      const reply = (await runScript(
        this.client,
        UPDATE_RECORD,
        [this.meta(tenant, id)],
        [expectedVersion, ...patchArgs(patch)],
      )) as Array<string | null> | null;
      if (reply === null) return null;
      const record = decodeRecord(id, reply) as Record;
      if (before) await this.sweep.hint([hintsOf(record)]);
      return publicRecord(record);
    });
  }

  async list(scope: RegistryScope, query: SessionQuery, now: number): Promise<StoredSession[]> {
    this.assertOpen();
    const owner = scope.owner ?? query.owner;
    if (scope.owner !== undefined && query.owner !== undefined && scope.owner !== query.owner) {
      return [];
    }
    const project = this.project(scope.tenant);
    const key = owner === undefined ? project.listAll : project.listOwner(owner);
    const bounds = listBounds(query);
    if (!bounds) return [];
    const wanted = query.limit + 1;
    // Filters no index narrows: look at a few fields of each candidate first, and read whole
    // records (usage state and all) only for the rows that pass.
    const filtered =
      query.status !== undefined ||
      query.tag !== undefined ||
      query.titleContains !== undefined ||
      query.activeFrom !== undefined ||
      query.activeTo !== undefined;
    const found: StoredSession[] = [];
    return this.guard('list', async () => {
      let { max } = bounds;
      // The first read asks for about a page; later ones, when filters drop rows, for more.
      let count = filtered ? Math.min(Math.max(wanted * 4, 200), SCAN_BATCH) : wanted;
      for (;;) {
        const members = (await this.client.call(
          'ZRANGE',
          key,
          max,
          bounds.min,
          'BYLEX',
          'REV',
          'LIMIT',
          0,
          count,
        )) as string[];
        let ids = members.map((member) => parseListMember(member).id);
        if (filtered) {
          const listable = await this.fetchListable(scope.tenant, ids);
          ids = ids.filter((_, i) => {
            const row = listable[i];
            return row != null && matchesQuery(row, scope, query, now);
          });
        }
        // Redis orders ties by bytes, JS by UTF-16 units; sort so pages follow compareForListing.
        const batch: StoredSession[] = [];
        for (const record of await this.fetch(scope.tenant, ids)) {
          if (record && matchesQuery(record, scope, query, now)) batch.push(publicRecord(record));
        }
        found.push(...batch.sort(compareForListing));
        if (found.length >= wanted || members.length < count) break;
        max = `(${members.at(-1) as string}`;
        count = Math.min(count * 4, SCAN_BATCH);
      }
      return found.slice(0, wanted);
    });
  }

  async remove(tenant: string, id: string): Promise<boolean> {
    this.assertOpen();
    const result = await this.guard('remove', () =>
      this.store.remover.remove(tenantProjectKey(tenant), id, { mode: 'record' }),
    );
    return result.removed;
  }

  async countOwned(tenant: string, owner: string, statuses: SessionStatus[]): Promise<number> {
    this.assertOpen();
    const key = this.project(tenant).listOwner(owner);
    let count = 0;
    await this.guard('countOwned', () =>
      this.walk(key, async (ids) => {
        const values = await Promise.all(
          ids.map((id) => this.client.hget(this.meta(tenant, id), 'r:status')),
        );
        for (const value of values) {
          if (value !== null && statuses.includes(JSON.parse(value) as SessionStatus)) count++;
        }
      }),
    );
    return count;
  }

  async forksOf(tenant: string, id: string): Promise<StoredSession[]> {
    this.assertOpen();
    const key = this.project(tenant).forks(id);
    return this.guard('forksOf', async () => {
      const forks: StoredSession[] = [];
      await this.walk(key, async (ids) => {
        for (const record of await this.fetch(tenant, ids)) {
          if (record && record.forkedFrom?.sessionId === id) forks.push(publicRecord(record));
        }
      });
      return forks.sort(compareForListing);
    });
  }

  async dailyUsage(scope: RegistryScope, fromDay: string, toDay: string): Promise<DailyUsage[]> {
    this.assertOpen();
    if (fromDay > toDay) return [];
    const project = this.project(scope.tenant);
    return this.guard('dailyUsage', async () => {
      const days = (await this.client.call(
        'ZRANGE',
        project.days,
        `[${fromDay}`,
        `[${toDay}`,
        'BYLEX',
      )) as string[];
      const { owner } = scope;
      // Each day adds its spend HASHes to what earlier versions charged (see charges.ts).
      const rows = await Promise.all(
        days.map(async (day): Promise<DailyUsage[]> => {
          const figures = new DayFigures(day);
          if (owner !== undefined) {
            const [fields, spends] = await Promise.all([
              this.client.hmget(project.day(day), ...figureFields(owner)),
              this.client.hvals(project.spend(owner, day)),
            ]);
            figures.addLegacyOwner(owner, fields);
            figures.addSpends(owner, spends);
            return figures.rows();
          }
          // Flat replies: owner names are data, never object keys.
          const [flat, owners] = await Promise.all([
            this.client.call('HGETALL', project.day(day)) as Promise<string[]>,
            this.client.smembers(project.owners(day)),
          ]);
          figures.addLegacyDay(flat);
          const spends = await Promise.all(
            owners.map((name) => this.client.hvals(project.spend(name, day))),
          );
          for (const [i, name] of owners.entries()) figures.addSpends(name, spends[i] ?? []);
          return figures.rows();
        }),
      );
      return rows
        .flat()
        .sort((a, b) =>
          a.day < b.day
            ? -1
            : a.day > b.day
              ? 1
              : a.owner < b.owner
                ? -1
                : a.owner > b.owner
                  ? 1
                  : 0,
        );
    });
  }

  async countByStatus(scope: RegistryScope, now: number): Promise<StatusCounts> {
    this.assertOpen();
    const project = this.project(scope.tenant);
    const key = scope.owner === undefined ? project.listAll : project.listOwner(scope.owner);
    const counts: StatusCounts = {
      byStatus: { active: 0, archived: 0, expired: 0, failed: 0 },
      dueToExpire: 0,
      dueToPurge: 0,
    };
    await this.guard('countByStatus', () =>
      this.walk(key, async (ids) => {
        const rows = await Promise.all(
          ids.map((id) =>
            this.client.hmget(
              this.meta(scope.tenant, id),
              'r:status',
              'r:expiresAt',
              'r:purgeAt',
              'r:owner',
            ),
          ),
        );
        for (const [status, expires, purge, owner] of rows) {
          if (status == null || expires == null || purge == null || owner == null) continue;
          if (scope.owner !== undefined && JSON.parse(owner) !== scope.owner) continue;
          const stored = JSON.parse(status) as SessionStatus;
          const expiresAt = JSON.parse(expires) as number | null;
          const purgeAt = JSON.parse(purge) as number | null;
          const effective = effectiveStatus({ status: stored, expiresAt }, now);
          counts.byStatus[effective]++;
          if (isDueToExpire({ status: stored, expiresAt }, now)) counts.dueToExpire++;
          if (isDueToPurge({ status: stored, purgeAt }, now)) counts.dueToPurge++;
        }
      }),
    );
    return counts;
  }

  async expireDue(now: number, limit: number): Promise<SweptSession[]> {
    this.assertOpen();
    return this.guard('expireDue', async () => {
      const changed: SweptSession[] = [];
      while (changed.length < limit) {
        const { token, claimed } = await this.sweep.claim('e', now, limit - changed.length);
        if (claimed.length === 0) break;
        const replies = (await Promise.all(
          claimed.map(({ tenant, id }) =>
            runScript(this.client, EXPIRE_RECORD, [this.meta(tenant, id)], [now]),
          ),
        )) as Array<[number, string?, string?, string?]>;
        const outcomes: SweepOutcome[] = [];
        const hints: SweepHint[] = [];
        claimed.forEach(({ member, tenant, id }, i) => {
          const [result, status, expires, purge] = replies[i] as [number, string, string, string];
          if (result === -1) {
            outcomes.push({ member, score: null });
            return;
          }
          const expiresAt = JSON.parse(expires) as number | null;
          const purgeAt = JSON.parse(purge) as number | null;
          if (result === 1) changed.push({ tenant, id });
          const live = status === '"active"' || status === '"failed"';
          if (result === 0 && live && expiresAt !== null) {
            // Extended since the hint was written: come back at the new deadline.
            outcomes.push({ member, score: expiresAt });
            return;
          }
          outcomes.push({ member, score: null });
          if (status === '"expired"' && purgeAt !== null) {
            hints.push({ tenant, id, expiring: null, purging: purgeAt });
          }
        });
        await this.sweep.finish('e', token, outcomes, hints);
      }
      return changed;
    });
  }

  async purgeDue(now: number, limit: number): Promise<SweptSession[]> {
    this.assertOpen();
    return this.guard('purgeDue', async () => {
      const changed: SweptSession[] = [];
      while (changed.length < limit) {
        const { token, claimed } = await this.sweep.claim('p', now, limit - changed.length);
        if (claimed.length === 0) break;
        const results = await this.store.remover.removeMany(
          claimed.map(({ tenant, id }) => ({
            projectKey: tenantProjectKey(tenant),
            sessionId: id,
          })),
          { mode: 'purge', now },
        );
        const outcomes: SweepOutcome[] = [];
        const hints: SweepHint[] = [];
        claimed.forEach(({ member, tenant, id }, i) => {
          const result = results[i];
          // A purged session is out of the sweep index already (the removal took it out).
          if (!result || result.removed) {
            changed.push({ tenant, id });
            return;
          }
          const status = result.status === null ? null : (JSON.parse(result.status) as string);
          const purgeAt =
            result.purgeAt === null ? null : (JSON.parse(result.purgeAt) as number | null);
          const expiresAt =
            result.expiresAt === null ? null : (JSON.parse(result.expiresAt) as number | null);
          if (status === 'expired' && purgeAt !== null) {
            outcomes.push({ member, score: purgeAt });
            return;
          }
          outcomes.push({ member, score: null });
          if ((status === 'active' || status === 'failed') && expiresAt !== null) {
            hints.push({ tenant, id, expiring: expiresAt, purging: null });
          }
        });
        await this.sweep.finish('p', token, outcomes, hints);
      }
      return changed;
    });
  }

  /** Writes a session's list entries; false when another registration holds them (not forced). */
  private async index(
    project: ProjectKeys,
    id: string,
    rid: string,
    createdAt: number,
    owner: string,
    forkedFrom: StoredSession['forkedFrom'],
    force: boolean,
  ): Promise<boolean> {
    const keys = [project.registered, project.listAll, project.listOwner(owner)];
    if (forkedFrom) keys.push(project.forks(forkedFrom.sessionId));
    const done = await runScript(this.client, INDEX_SESSION, keys, [
      id,
      rid,
      listTime(createdAt),
      force ? '1' : '0',
    ]);
    return done === 1;
  }

  /** Records of `ids` (null where there is none), one HMGET each, sent together. */
  private fetch(tenant: string, ids: readonly string[]): Promise<Array<Record | null>> {
    return Promise.all(
      ids.map(async (id) =>
        decodeRecord(id, await this.client.hmget(this.meta(tenant, id), ...READ_FIELDS)),
      ),
    );
  }

  /** The fields filters read, of `ids` (null where there is no record). */
  private fetchListable(
    tenant: string,
    ids: readonly string[],
  ): Promise<Array<ListableSession | null>> {
    return Promise.all(
      ids.map(async (id) => {
        const values = await this.client.hmget(this.meta(tenant, id), ...LISTABLE_FIELDS);
        if (values.some((value) => value === null)) return null;
        const [t, owner, title, tags, status, createdAt, lastActiveAt, expiresAt] = values.map(
          (value) => JSON.parse(value as string),
        );
        return { id, tenant: t, owner, title, tags, status, createdAt, lastActiveAt, expiresAt };
      }),
    );
  }

  /** Calls `visit` with the ids of a listing ZSET, SCAN_BATCH at a time, in member order. */
  private async walk(key: string, visit: (ids: string[]) => Promise<void>): Promise<void> {
    let min = '-';
    for (;;) {
      const members = (await this.client.call(
        'ZRANGE',
        key,
        min,
        '+',
        'BYLEX',
        'LIMIT',
        0,
        SCAN_BATCH,
      )) as string[];
      if (members.length === 0) return;
      await visit(members.map((member) => parseListMember(member).id));
      if (members.length < SCAN_BATCH) return;
      min = `(${members.at(-1) as string}`;
    }
  }

  private project(tenant: string): ProjectKeys {
    return projectKeys(this.prefix, tenantProjectKey(tenant));
  }

  private meta(tenant: string, id: string): string {
    return sessionKeys(this.prefix, tenantProjectKey(tenant), id).meta;
  }

  private assertOpen(): void {
    if (this.closed) throw closedError('Redis session registry');
  }

  private guard<T>(operation: string, run: () => Promise<T>): Promise<T> {
    return guardRedis(`Redis registry ${operation}()`, operation, run());
  }
}

/**
 * Sweep hints to write before an update whose patch may bring a due time earlier, so that a
 * crash after the record write cannot leave the session without one. Where the patch does not
 * say the time (a status change alone), the hint is 0: the sweeper looks at once and
 * reschedules. Null when the patch touches no due time.
 */
function hintsBeforeUpdate(tenant: string, id: string, patch: SessionPatch): SweepHint | null {
  const { status, expiresAt, purgeAt } = patch;
  if (status === undefined && expiresAt === undefined && purgeAt === undefined) return null;
  let expiring: number | null = null;
  if (status === undefined || isLive(status)) {
    if (expiresAt !== undefined) expiring = expiresAt;
    else if (status !== undefined) expiring = 0;
  }
  let purging: number | null = null;
  if (status === undefined || status === 'expired') {
    if (purgeAt !== undefined) purging = purgeAt;
    else if (status === 'expired') purging = 0;
  }
  return { tenant, id, expiring, purging };
}

/**
 * The lexicographic range of a listing ZSET that can hold matches, newest end first: below the
 * cursor (exclusive, so a page starts right after it), below createdTo, at or above createdFrom.
 * Null when nothing can match. Filters are still applied to every record read.
 */
function listBounds(query: SessionQuery): { max: string; min: string } | null {
  let max = '+';
  let maxTime = Number.POSITIVE_INFINITY;
  if (query.createdTo !== undefined) {
    const to = Math.ceil(query.createdTo);
    if (to <= 0) return null;
    if (String(to).length <= LIST_TIME_DIGITS) {
      max = `(${listTime(to)}`;
      maxTime = to;
    }
  }
  const { cursor } = query;
  if (cursor !== undefined && cursor.createdAt < maxTime) {
    if (cursor.createdAt < 0) return null;
    max = Number.isInteger(cursor.createdAt)
      ? `(${listMember(cursor.createdAt, cursor.id)}`
      : `(${listTime(Math.ceil(cursor.createdAt))}`;
  }
  let min = '-';
  if (query.createdFrom !== undefined && query.createdFrom > 0) {
    const from = Math.floor(query.createdFrom);
    if (String(from).length > LIST_TIME_DIGITS) return null;
    min = `[${listTime(from)}`;
  }
  return { max, min };
}
