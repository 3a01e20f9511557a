import type { TranscriptStore } from '../backends/backend.js';
import { type SessionRegistry, tenantProjectKey } from '../backends/registry.js';
import type { TranscriptEntry } from '../core/entries.js';
import { sessionExpired } from '../core/expiry.js';
import { type Identity, sessionNotFound } from '../core/identity.js';
import {
  assertProjectKey,
  assertSessionKey,
  assertSessionRef,
  type SessionKey,
  type SessionRef,
} from '../core/session-key.js';

type Access = 'mine' | 'unregistered' | 'hidden';

/** Whether a session id is past its deadline now, and since when; null when it is not. */
export type ExpiryCheck = (sessionId: string) => Promise<number | null>;

/**
 * The transcript store the hub hands the SDK for one caller. Every key is moved under the
 * caller's tenant (the projectKey the SDK derived from its working directory is ignored), so two
 * tenants never share a transcript key. A user (not an admin) reads only sessions it owns, and may
 * append to its own sessions or to ids nobody has registered yet (how the SDK starts a session or
 * writes a fork); another owner's session behaves as if it did not exist.
 */
export class TenantTranscriptStore implements TranscriptStore {
  private readonly projectKey: string;
  /** Owners never change, so what a lookup found stays true until the record is gone. */
  private readonly known = new Map<string, Access>();

  constructor(
    private readonly store: TranscriptStore,
    private readonly registry: SessionRegistry,
    private readonly identity: Identity,
    private readonly expiredSince: ExpiryCheck,
  ) {
    this.projectKey = tenantProjectKey(identity.tenant);
  }

  private rekey<K extends SessionRef>(key: K): K {
    return { ...key, projectKey: this.projectKey };
  }

  private async access(sessionId: string): Promise<Access> {
    if (this.identity.admin === true) return 'mine';
    const cached = this.known.get(sessionId);
    if (cached !== undefined) return cached;
    const record = await this.registry.get(this.identity.tenant, sessionId);
    if (record === null) return 'unregistered';
    const access: Access = record.owner === this.identity.owner ? 'mine' : 'hidden';
    this.known.set(sessionId, access);
    return access;
  }

  async append(key: SessionKey, entries: TranscriptEntry[]): Promise<void> {
    assertSessionKey(key);
    if ((await this.access(key.sessionId)) === 'hidden') throw sessionNotFound(key.sessionId);
    await this.store.append(this.rekey(key), entries);
  }

  async load(key: SessionKey): Promise<TranscriptEntry[] | null> {
    assertSessionKey(key);
    if ((await this.access(key.sessionId)) !== 'mine') return null;
    if (key.subpath === undefined) {
      const expiredAt = await this.expiredSince(key.sessionId);
      if (expiredAt !== null) throw sessionExpired(key.sessionId, expiredAt);
    }
    return this.store.load(this.rekey(key));
  }

  async listSessions(projectKey: string): Promise<Array<{ sessionId: string; mtime: number }>> {
    assertProjectKey(projectKey);
    return this.visible(await this.store.listSessions(this.projectKey));
  }

  async listSessionSummaries(
    projectKey: string,
  ): ReturnType<TranscriptStore['listSessionSummaries']> {
    assertProjectKey(projectKey);
    return this.visible(await this.store.listSessionSummaries(this.projectKey));
  }

  async delete(key: SessionKey): Promise<void> {
    assertSessionKey(key);
    if ((await this.access(key.sessionId)) !== 'mine') return;
    this.known.delete(key.sessionId);
    await this.store.delete(this.rekey(key));
  }

  async listSubkeys(ref: SessionRef): Promise<string[]> {
    assertSessionRef(ref);
    if ((await this.access(ref.sessionId)) !== 'mine') return [];
    return this.store.listSubkeys(this.rekey(ref));
  }

  private async visible<T extends { sessionId: string }>(items: T[]): Promise<T[]> {
    if (this.identity.admin === true) return items;
    const shown: T[] = [];
    for (const item of items) {
      if ((await this.access(item.sessionId)) === 'mine') shown.push(item);
    }
    return shown;
  }
}
