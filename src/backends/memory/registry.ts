import type { DailyUsage } from '../../core/daily-usage.js';
import {
  compareForListing,
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
import type { MemoryData, MemorySession } from './transcript-store.js';

/** Records in process memory, beside the memory store's transcripts (the same map entries). */
export class MemoryRegistry implements SessionRegistry {
  constructor(private readonly data: MemoryData) {}

  private registered(tenant: string, id: string): MemorySession | undefined {
    const session = this.data.session(
      { projectKey: tenantProjectKey(tenant), sessionId: id },
      false,
    );
    return session?.record ? session : undefined;
  }

  private *all(tenant?: string): Generator<MemorySession & { record: object }> {
    const projects =
      tenant === undefined
        ? this.data.projects.values()
        : [this.data.projects.get(tenantProjectKey(tenant)) ?? new Map<string, MemorySession>()];
    for (const sessions of projects) {
      for (const session of sessions.values()) {
        if (session.record) yield session as MemorySession & { record: object };
      }
    }
  }

  async insert(input: NewSession): Promise<StoredSession> {
    const { usage, ...record } = input;
    const session = this.data.session(
      { projectKey: tenantProjectKey(input.tenant), sessionId: input.id },
      true,
    );
    if (session.record) throw sessionExists(input.id);
    session.record = structuredClone({ ...record, version: 1 });
    if (usage) session.usage = structuredClone(usage);
    return view(session);
  }

  async get(tenant: string, id: string): Promise<StoredSession | null> {
    const session = this.registered(tenant, id);
    return session ? view(session) : null;
  }

  async update(
    tenant: string,
    id: string,
    expectedVersion: number,
    patch: SessionPatch,
  ): Promise<StoredSession | null> {
    const session = this.registered(tenant, id);
    if (!session?.record || session.record.version !== expectedVersion) return null;
    session.record = {
      ...session.record,
      ...structuredClone(patch),
      version: expectedVersion + 1,
    };
    return view(session);
  }

  async list(scope: RegistryScope, query: SessionQuery, now: number): Promise<StoredSession[]> {
    const matches: MemorySession[] = [];
    for (const session of this.all(scope.tenant)) {
      if (matchesQuery(session.record as StoredSession, scope, query, now)) matches.push(session);
    }
    return matches
      .sort((a, b) => compareForListing(a.record as StoredSession, b.record as StoredSession))
      .slice(0, query.limit + 1)
      .map(view);
  }

  async remove(tenant: string, id: string): Promise<boolean> {
    if (!this.registered(tenant, id)) return false;
    return this.data.deleteSession({ projectKey: tenantProjectKey(tenant), sessionId: id });
  }

  async countOwned(tenant: string, owner: string, statuses: SessionStatus[]): Promise<number> {
    let count = 0;
    for (const { record } of this.all(tenant)) {
      const r = record as StoredSession;
      if (r.owner === owner && statuses.includes(r.status)) count++;
    }
    return count;
  }

  async forksOf(tenant: string, id: string): Promise<StoredSession[]> {
    const forks: StoredSession[] = [];
    for (const session of this.all(tenant)) {
      if ((session.record as StoredSession).forkedFrom?.sessionId === id) forks.push(view(session));
    }
    return forks.sort(compareForListing);
  }

  async dailyUsage(scope: RegistryScope, fromDay: string, toDay: string): Promise<DailyUsage[]> {
    const rows: DailyUsage[] = [];
    for (const usage of this.data.daily.get(scope.tenant)?.values() ?? []) {
      if (scope.owner !== undefined && usage.owner !== scope.owner) continue;
      if (usage.day < fromDay || usage.day > toDay) continue;
      rows.push(structuredClone(usage));
    }
    return rows.sort((a, b) =>
      a.day < b.day ? -1 : a.day > b.day ? 1 : a.owner < b.owner ? -1 : 1,
    );
  }

  async countByStatus(scope: RegistryScope, now: number): Promise<StatusCounts> {
    const counts: StatusCounts = {
      byStatus: { active: 0, archived: 0, expired: 0, failed: 0 },
      dueToExpire: 0,
      dueToPurge: 0,
    };
    for (const { record } of this.all(scope.tenant)) {
      const r = record as StoredSession;
      if (scope.owner !== undefined && r.owner !== scope.owner) continue;
      const status = effectiveStatus(r, now);
      counts.byStatus[status]++;
      if (isDueToExpire(r, now)) counts.dueToExpire++;
      if (isDueToPurge(r, now)) counts.dueToPurge++;
    }
    return counts;
  }

  async expireDue(now: number, limit: number): Promise<SweptSession[]> {
    const changed: SweptSession[] = [];
    for (const session of this.all()) {
      if (changed.length >= limit) break;
      const r = session.record as Omit<StoredSession, 'usage'>;
      if (!isDueToExpire(r, now)) continue;
      session.record = { ...r, status: 'expired', expiredAt: r.expiresAt, version: r.version + 1 };
      changed.push({ tenant: r.tenant, id: r.id });
    }
    return changed;
  }

  async purgeDue(now: number, limit: number): Promise<SweptSession[]> {
    const due: SweptSession[] = [];
    for (const { record } of this.all()) {
      if (due.length >= limit) break;
      const r = record as StoredSession;
      if (isDueToPurge(r, now)) due.push({ tenant: r.tenant, id: r.id });
    }
    for (const { tenant, id } of due) await this.remove(tenant, id);
    return due;
  }
}

/** A copy of a registered session, so callers can never change what is stored. */
function view(session: MemorySession): StoredSession {
  const record = session.record as Omit<StoredSession, 'usage'>;
  return structuredClone({ ...record, usage: session.usage ?? emptyUsageState() });
}

/** Expired, or active past its deadline, and past its retention as well. */
