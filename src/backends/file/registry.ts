import type { DailyUsage } from '../../core/daily-usage.js';
import { closedError } from '../../core/errors.js';
import { assertSessionRef, type SessionRef } from '../../core/session-key.js';
import {
  effectiveStatus,
  isDueToExpire,
  isDueToPurge,
  matchesQuery,
  type SessionQuery,
  type SessionStatus,
} from '../../core/session-record.js';
import { emptyUsageState } from '../../core/usage.js';
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
import type { RecordList, RegisteredSession } from './catalog.js';
import type { FileFolder } from './folder.js';
import type { IndexedSession, IndexLine, StoredRecord } from './project-index.js';

/**
 * Records in the tenant's project index, beside the transcripts' summaries: a record is a line
 * `{ session, record }` of DIR/<tenant project>/index.jsonl, written by insert, update and
 * expireDue, and gone with the session's `{ deleted }` line. Queries run on the catalog, the
 * records of every index read so far kept in listing order, so a page reads only its own sessions.
 * Every change is checked and written under the project's index lock: this process is the only
 * writer of the directory, so that is all the compare-and-set needs.
 */
export class FileRegistry implements SessionRegistry {
  private closed = false;

  constructor(private readonly folder: FileFolder) {}

  private checkOpen(): void {
    if (this.closed) throw closedError('file session registry');
  }

  private ref(tenant: string, id: string): SessionRef {
    const ref = { projectKey: tenantProjectKey(tenant), sessionId: id };
    assertSessionRef(ref);
    return ref;
  }

  /** The catalog lists a tenant's records once its project index has been read. */
  private async tenantLoaded(tenant: string): Promise<void> {
    await this.folder.projectIndex(tenantProjectKey(tenant));
  }

  async insert(input: NewSession): Promise<StoredSession> {
    this.checkOpen();
    const { usage, ...fields } = input;
    const ref = this.ref(input.tenant, input.id);
    const record: StoredRecord = { ...structuredClone(fields), version: 1 };
    let inserted: StoredSession | undefined;
    // The session lock too: an append builds its line (usage, charge) from this session's
    // state before taking the index lock, so registration must not change under it.
    const write = () =>
      this.folder.writeIndex(ref.projectKey, (index) => {
        const existing = index.sessions.get(input.id);
        if (existing?.record) throw sessionExists(input.id);
        // A transcript already here is adopted: its summary and folded usage stay, unless the
        // caller brings a usage state, which replaces the folded one (appends fold onto it next).
        const line: IndexLine = { session: input.id, record };
        if (usage) line.usage = structuredClone(usage);
        inserted = view({ id: input.id, usage: line.usage ?? existing?.usage }, record);
        return [line];
      });
    await this.folder.withSessionLock(ref, write);
    return inserted as StoredSession;
  }

  async get(tenant: string, id: string): Promise<StoredSession | null> {
    this.checkOpen();
    const ref = this.ref(tenant, id);
    const session = (await this.folder.projectIndex(ref.projectKey)).sessions.get(id);
    return session?.record ? view(session) : null;
  }

  async update(
    tenant: string,
    id: string,
    expectedVersion: number,
    patch: SessionPatch,
  ): Promise<StoredSession | null> {
    this.checkOpen();
    const ref = this.ref(tenant, id);
    let result: StoredSession | null = null;
    await this.folder.writeIndex(ref.projectKey, (index) => {
      const session = index.sessions.get(id);
      if (!session?.record || session.record.version !== expectedVersion) return [];
      const record: StoredRecord = {
        ...session.record,
        ...structuredClone(definedFields(patch)),
        version: expectedVersion + 1,
      };
      result = view(session, record);
      return [{ session: id, record }];
    });
    return result;
  }

  async list(scope: RegistryScope, query: SessionQuery, now: number): Promise<StoredSession[]> {
    this.checkOpen();
    await this.tenantLoaded(scope.tenant);
    const owner = scope.owner ?? query.owner;
    const list = this.listOf(scope.tenant, owner);
    const page: StoredSession[] = [];
    if (!list) return page;
    for (const session of list.newestFirst(query.cursor)) {
      if (!matchesQuery(session.record, scope, query, now)) continue;
      page.push(view(session));
      if (page.length > query.limit) break;
    }
    return page;
  }

  /** The narrowest list that holds every session of `tenant` (and `owner`, if given). */
  private listOf(tenant: string, owner: string | undefined): RecordList | undefined {
    const records = this.folder.catalog.tenant(tenant);
    return owner === undefined ? records?.all : records?.byOwner.get(owner);
  }

  async remove(tenant: string, id: string): Promise<boolean> {
    this.checkOpen();
    const ref = this.ref(tenant, id);
    return this.folder.withSessionLock(ref, async () => {
      const session = (await this.folder.projectIndex(ref.projectKey)).sessions.get(id);
      if (!session?.record) return false;
      await this.folder.deleteSession(ref);
      return true;
    });
  }

  async countOwned(tenant: string, owner: string, statuses: SessionStatus[]): Promise<number> {
    this.checkOpen();
    await this.tenantLoaded(tenant);
    let count = 0;
    for (const { record } of this.listOf(tenant, owner)?.newestFirst() ?? []) {
      if (statuses.includes(record.status)) count++;
    }
    return count;
  }

  async forksOf(tenant: string, id: string): Promise<StoredSession[]> {
    this.checkOpen();
    await this.tenantLoaded(tenant);
    const forks: StoredSession[] = [];
    for (const session of this.listOf(tenant, undefined)?.newestFirst() ?? []) {
      if (session.record.forkedFrom?.sessionId === id) forks.push(view(session));
    }
    return forks;
  }

  async dailyUsage(scope: RegistryScope, fromDay: string, toDay: string): Promise<DailyUsage[]> {
    this.checkOpen();
    const index = await this.folder.projectIndex(tenantProjectKey(scope.tenant));
    const rows: DailyUsage[] = [];
    for (const usage of index.daily.values()) {
      if (scope.owner !== undefined && usage.owner !== scope.owner) continue;
      if (usage.day < fromDay || usage.day > toDay) continue;
      rows.push(structuredClone(usage));
    }
    return rows.sort((a, b) =>
      a.day < b.day ? -1 : a.day > b.day ? 1 : a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0,
    );
  }

  async countByStatus(scope: RegistryScope, now: number): Promise<StatusCounts> {
    this.checkOpen();
    await this.tenantLoaded(scope.tenant);
    const counts: StatusCounts = {
      byStatus: { active: 0, archived: 0, expired: 0, failed: 0 },
      dueToExpire: 0,
      dueToPurge: 0,
    };
    for (const { record } of this.listOf(scope.tenant, scope.owner)?.newestFirst() ?? []) {
      const status = effectiveStatus(record, now);
      counts.byStatus[status]++;
      if (isDueToExpire(record, now)) counts.dueToExpire++;
      if (isDueToPurge(record, now)) counts.dueToPurge++;
    }
    return counts;
  }

  /**
   * Tenant by tenant, the due sessions are picked and marked in one write of the tenant's index,
   * under its lock: a session another sweeper marked first is no longer active when picked here.
   */
  async expireDue(now: number, limit: number): Promise<SweptSession[]> {
    this.checkOpen();
    await this.folder.readAllTenants();
    const changed: SweptSession[] = [];
    const tenants = [...this.folder.catalog.allTenants()].map(([tenant]) => tenant);
    for (const tenant of tenants) {
      if (changed.length >= limit) break;
      await this.folder.writeIndex(tenantProjectKey(tenant), () => {
        // Read inside the lock: the list as it is now, after any remove since the loop began.
        const all = this.folder.catalog.tenant(tenant)?.all;
        if (!all) return [];
        const lines: IndexLine[] = [];
        for (const { id, record } of all.newestFirst()) {
          if (changed.length >= limit) break;
          if (!isDueToExpire(record, now)) continue;
          const expired: StoredRecord = {
            ...record,
            status: 'expired',
            expiredAt: record.expiresAt,
            version: record.version + 1,
          };
          lines.push({ session: id, record: expired });
          changed.push({ tenant, id });
        }
        return lines;
      });
    }
    return changed;
  }

  /**
   * Sessions are picked from the catalog, then each is checked again and removed under its own
   * lock, as remove() does: one that a concurrent sweeper or remove() took first is skipped and
   * not counted. Picks are claimed synchronously, so concurrent calls take different sessions.
   */
  async purgeDue(now: number, limit: number): Promise<SweptSession[]> {
    this.checkOpen();
    await this.folder.readAllTenants();
    const picked: RegisteredSession[] = [];
    for (const [, { all }] of this.folder.catalog.allTenants()) {
      for (const session of all.newestFirst()) {
        if (picked.length >= limit) break;
        if (isDueToPurge(session.record, now) && !purging.has(session)) picked.push(session);
      }
      if (picked.length >= limit) break;
    }
    for (const session of picked) purging.add(session);
    const purged: SweptSession[] = [];
    try {
      await inParallel(picked, PURGE_CONCURRENCY, async ({ record }) => {
        const ref = this.ref(record.tenant, record.id);
        const removed = await this.folder.withSessionLock(ref, async () => {
          const current = (await this.folder.projectIndex(ref.projectKey)).sessions.get(record.id);
          if (!current?.record || !isDueToPurge(current.record, now)) return false;
          return this.folder.deleteSession(ref);
        });
        if (removed) purged.push({ tenant: record.tenant, id: record.id });
      });
    } finally {
      for (const session of picked) purging.delete(session);
    }
    return purged;
  }

  close(): void {
    this.closed = true;
  }
}

/**
 * Sessions purged at once: each is a few small file operations (an index line, two removals),
 * which overlap in Node's I/O threads; the index lines still go one at a time.
 */
const PURGE_CONCURRENCY = 8;

async function inParallel<T>(items: T[], limit: number, task: (item: T) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Sessions a purgeDue() call of this process has picked and not yet finished with. */
const purging = new WeakSet<IndexedSession>();

/** A patch without keys set to undefined, which JSON would drop and a reopen would not see. */
function definedFields(patch: SessionPatch): SessionPatch {
  const defined: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(patch)) {
    if (value !== undefined) defined[field] = value;
  }
  return defined as SessionPatch;
}

/** A copy of a registered session, so callers can never change what is stored. */
function view(session: IndexedSession, record = session.record): StoredSession {
  return structuredClone({
    ...(record as StoredRecord),
    usage: session.usage ?? emptyUsageState(),
  });
}
