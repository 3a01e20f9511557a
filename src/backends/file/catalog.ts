import { compareForListing, type ListCursor } from '../../core/session-record.js';
import type { IndexedSession, StoredRecord } from './project-index.js';

/** A registered session: one whose record is set. */
export type RegisteredSession = IndexedSession & { record: StoredRecord };

/**
 * Registered sessions in listing order, oldest first, so that a new session (the newest, as a
 * rule) is a push rather than a move of the whole array. A page is read backwards from the
 * cursor's place, found by binary search: a page costs its own length, not the tenant's size.
 */
export class RecordList {
  private readonly items: RegisteredSession[] = [];

  get size(): number {
    return this.items.length;
  }

  /** The first place whose session is listed at or before `key` (as new as it, or newer). */
  private lowerBound(key: ListCursor): number {
    let low = 0;
    let high = this.items.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (compareForListing((this.items[mid] as RegisteredSession).record, key) <= 0) high = mid;
      else low = mid + 1;
    }
    return low;
  }

  add(session: RegisteredSession): void {
    const last = this.items[this.items.length - 1];
    if (last === undefined || compareForListing(session.record, last.record) < 0) {
      this.items.push(session);
    } else {
      this.items.splice(this.lowerBound(session.record), 0, session);
    }
  }

  /** Adds many at once: one sort rather than a move of the array per session. */
  addAll(sessions: RegisteredSession[]): void {
    for (const session of sessions) this.items.push(session);
    this.items.sort((a, b) => compareForListing(b.record, a.record));
  }

  remove(session: RegisteredSession): void {
    const at = this.lowerBound(session.record);
    if (this.items[at] === session) this.items.splice(at, 1);
    else {
      // Not where its keys say (they changed under it): look for it the slow way.
      const found = this.items.indexOf(session);
      if (found !== -1) this.items.splice(found, 1);
    }
  }

  /** Newest first, starting after `cursor`. Do not change the list while iterating. */
  *newestFirst(cursor?: ListCursor): Generator<RegisteredSession> {
    const start = cursor === undefined ? this.items.length : this.lowerBound(cursor);
    for (let i = start - 1; i >= 0; i--) yield this.items[i] as RegisteredSession;
  }
}

/** One tenant's registered sessions, all of them and per owner. */
export interface TenantRecords {
  all: RecordList;
  byOwner: Map<string, RecordList>;
}

/** The registered sessions of every project index loaded so far, by tenant. */
export class RecordCatalog {
  private readonly tenants = new Map<string, TenantRecords>();

  tenant(tenant: string): TenantRecords | undefined {
    return this.tenants.get(tenant);
  }

  /** Every tenant with registered sessions, by name. */
  allTenants(): IterableIterator<[string, TenantRecords]> {
    return this.tenants.entries();
  }

  private lists(record: StoredRecord): { all: RecordList; owner: RecordList } {
    let tenant = this.tenants.get(record.tenant);
    if (!tenant) {
      tenant = { all: new RecordList(), byOwner: new Map() };
      this.tenants.set(record.tenant, tenant);
    }
    let owner = tenant.byOwner.get(record.owner);
    if (!owner) {
      owner = new RecordList();
      tenant.byOwner.set(record.owner, owner);
    }
    return { all: tenant.all, owner };
  }

  add(session: IndexedSession): void {
    if (!session.record) return;
    const { all, owner } = this.lists(session.record);
    all.add(session as RegisteredSession);
    owner.add(session as RegisteredSession);
  }

  addAll(sessions: IndexedSession[]): void {
    const grouped = new Map<RecordList, RegisteredSession[]>();
    const put = (list: RecordList, session: RegisteredSession) => {
      const group = grouped.get(list);
      if (group) group.push(session);
      else grouped.set(list, [session]);
    };
    for (const session of sessions) {
      if (!session.record) continue;
      const { all, owner } = this.lists(session.record);
      put(all, session as RegisteredSession);
      put(owner, session as RegisteredSession);
    }
    for (const [list, group] of grouped) list.addAll(group);
  }

  remove(session: IndexedSession): void {
    const record = session.record;
    if (!record) return;
    const tenant = this.tenants.get(record.tenant);
    if (!tenant) return;
    tenant.all.remove(session as RegisteredSession);
    const owner = tenant.byOwner.get(record.owner);
    if (owner) {
      owner.remove(session as RegisteredSession);
      if (owner.size === 0) tenant.byOwner.delete(record.owner);
    }
    if (tenant.all.size === 0) this.tenants.delete(record.tenant);
  }
}
