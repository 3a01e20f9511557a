/**
 * What every backend's API key store does: the HTTP service's keys, kept where every service
 * instance on the backend finds them. Run it against a store of your own:
 *
 *   describeApiKeyStoreConformance('my backend', async () => ({ store, close }), { durable })
 */
import { afterEach, describe, expect, test } from 'vitest';
import type { ApiKeyRecord, ApiKeyStore } from '../../core/api-keys.js';
import { isSessionHubError, type SessionHubError } from '../../core/errors.js';

/** An API key store opened for one test. */
export interface ApiKeyStoreUnderTest {
  store: ApiKeyStore;
  /** Releases it (connections, handles). */
  close(): Promise<void>;
  /** Closes this store and opens another over the same data. Required with `durable`. */
  reopen?(): Promise<ApiKeyStoreUnderTest>;
  /**
   * Opens another store over the same data while this one stays open, as a second process or
   * host would. Required with `shared`.
   */
  another?(): Promise<ApiKeyStoreUnderTest>;
}

/** Opens a store on fresh, empty, isolated storage on every call. */
export type OpenApiKeyStore = () => Promise<ApiKeyStoreUnderTest>;

export interface ApiKeyConformanceOptions {
  /** Keys survive close(): the suite checks them after reopen(). */
  durable?: boolean;
  /** Several stores can share the storage at once: the suite checks they see each other. */
  shared?: boolean;
}

const T0 = Date.UTC(2026, 0, 1);
const MINUTE = 60_000;

/** A user key of `tenant`, created `minutes` after T0; `fields` overrides any field. */
function userKey(id: string, minutes = 0, fields: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  return {
    id,
    name: `key ${id}`,
    tenant: 'acme',
    owner: 'alice',
    role: 'user',
    secretHash: 'a'.repeat(64),
    rateLimitPerMinute: null,
    createdAt: T0 + minutes * MINUTE,
    revokedAt: null,
    ...fields,
  };
}

async function thrown(promise: Promise<unknown>): Promise<SessionHubError> {
  try {
    await promise;
  } catch (error) {
    if (isSessionHubError(error)) return error;
    throw error;
  }
  throw new Error('expected the call to throw a SessionHubError');
}

/** Registers the API key store conformance suite with vitest. */
export function describeApiKeyStoreConformance(
  name: string,
  open: OpenApiKeyStore,
  options: ApiKeyConformanceOptions = {},
): void {
  describe(name, () => {
    const opened: ApiKeyStoreUnderTest[] = [];
    afterEach(async () => {
      for (const handle of opened.splice(0).reverse()) await handle.close();
    });

    async function fresh(): Promise<ApiKeyStoreUnderTest> {
      const handle = await open();
      opened.push(handle);
      return handle;
    }

    test('insert then get returns every field as inserted', async () => {
      const { store } = await fresh();
      const user = userKey('k1user000001', 0, {
        name: 'discord bot 🤖 "quoted"',
        rateLimitPerMinute: 120,
        secretHash: '0123456789abcdef'.repeat(4),
      });
      const admin = userKey('k2admin00001', 1, {
        name: 'ci',
        tenant: 'globex',
        owner: null,
        role: 'admin',
      });
      await store.insert(user);
      await store.insert(admin);
      expect(await store.get(user.id)).toEqual(user);
      expect(await store.get(admin.id)).toEqual(admin);
      // Nulls come back as null, not undefined or missing.
      const back = (await store.get(admin.id)) as ApiKeyRecord;
      expect(back.owner).toBeNull();
      expect(back.rateLimitPerMinute).toBeNull();
      expect(back.revokedAt).toBeNull();
      expect(Number.isInteger(back.createdAt)).toBe(true);
    });

    test('a key inserted already revoked keeps its revocation time', async () => {
      const { store } = await fresh();
      const key = userKey('k1', 0, { revokedAt: T0 + 5 * MINUTE });
      await store.insert(key);
      expect(await store.get('k1')).toEqual(key);
      expect(await store.revoke('k1', T0 + 9 * MINUTE)).toEqual(key);
    });

    test('the store keeps a copy: changing the inserted or returned object changes nothing', async () => {
      const { store } = await fresh();
      const key = userKey('k1');
      await store.insert(key);
      key.name = 'changed';
      const got = (await store.get('k1')) as ApiKeyRecord;
      got.tenant = 'changed';
      expect(await store.get('k1')).toEqual(userKey('k1'));
    });

    test('get of an unknown id is null', async () => {
      const { store } = await fresh();
      expect(await store.get('nosuchkey000')).toBeNull();
      await store.insert(userKey('k1'));
      expect(await store.get('k2')).toBeNull();
      expect(await store.get('')).toBeNull();
    });

    test('a second insert of the same id is refused with INVALID_INPUT and changes nothing', async () => {
      const { store } = await fresh();
      const first = userKey('k1', 0, { owner: 'alice' });
      await store.insert(first);
      const error = await thrown(
        store.insert(userKey('k1', 5, { owner: 'mallory', tenant: 'evil', role: 'admin' })),
      );
      expect(error.code).toBe('INVALID_INPUT');
      expect(error.details).toMatchObject({ id: 'k1' });
      expect(await store.get('k1')).toEqual(first);
      expect(await store.list()).toEqual([first]);
      expect(await store.list('evil')).toEqual([]);
    });

    test('of concurrent inserts of one id, exactly one is stored', async () => {
      const { store } = await fresh();
      const contenders = ['alice', 'bob', 'carol', 'dave'].map((owner) =>
        userKey('k1', 0, { owner }),
      );
      const results = await Promise.allSettled(contenders.map((key) => store.insert(key)));
      const won = results.flatMap((result, i) => (result.status === 'fulfilled' ? [i] : []));
      expect(won).toHaveLength(1);
      for (const result of results) {
        if (result.status === 'rejected') {
          expect(isSessionHubError(result.reason, 'INVALID_INPUT')).toBe(true);
        }
      }
      expect(await store.get('k1')).toEqual(contenders[won[0] as number]);
      expect(await store.list()).toHaveLength(1);
    });

    test('list() is every key oldest first; list(tenant) only that tenant’s', async () => {
      const { store } = await fresh();
      const a3 = userKey('a3', 3);
      const g1 = userKey('g1', 1, { tenant: 'globex', owner: null, role: 'admin' });
      const a0 = userKey('a0', 0);
      const g2 = userKey('g2', 2, { tenant: 'globex', owner: 'bob' });
      const a5 = userKey('a5', 5, { owner: 'bob' });
      // Inserted out of creation order, so insertion order cannot pass for it.
      for (const key of [a3, g1, a5, a0, g2]) await store.insert(key);
      expect(await store.list()).toEqual([a0, g1, g2, a3, a5]);
      expect(await store.list('acme')).toEqual([a0, a3, a5]);
      expect(await store.list('globex')).toEqual([g1, g2]);
      expect(await store.list('initech')).toEqual([]);
    });

    test('an empty store lists nothing', async () => {
      const { store } = await fresh();
      expect(await store.list()).toEqual([]);
      expect(await store.list('acme')).toEqual([]);
    });

    test('tenants with unusual names are kept apart', async () => {
      const { store } = await fresh();
      const tenants = ['acme', 'acme:eu', 'ACME', 'acme%3Aeu', 'Ünïcode {x}/../*', 't'.repeat(200)];
      const keys = tenants.map((tenant, i) => userKey(`k${i}`, i, { tenant, owner: `${tenant}!` }));
      for (const key of keys) await store.insert(key);
      for (const key of keys) expect(await store.list(key.tenant)).toEqual([key]);
      expect(await store.list()).toEqual(keys);
    });

    test('revoke sets revokedAt once and returns the key; a second revoke keeps the first time', async () => {
      const { store } = await fresh();
      const key = userKey('k1', 0, { rateLimitPerMinute: 60 });
      const other = userKey('k2', 1);
      await store.insert(key);
      await store.insert(other);
      const revoked = { ...key, revokedAt: T0 + 10 * MINUTE };
      expect(await store.revoke('k1', T0 + 10 * MINUTE)).toEqual(revoked);
      expect(await store.revoke('k1', T0 + 20 * MINUTE)).toEqual(revoked);
      expect(await store.get('k1')).toEqual(revoked);
      expect(await store.list()).toEqual([revoked, other]);
      expect(await store.list('acme')).toEqual([revoked, other]);
      // A revoked key's id stays taken.
      expect((await thrown(store.insert(userKey('k1')))).code).toBe('INVALID_INPUT');
    });

    test('of concurrent revokes, one time wins and every call returns it', async () => {
      const { store } = await fresh();
      await store.insert(userKey('k1'));
      const times = [1, 2, 3, 4, 5, 6].map((m) => T0 + m * MINUTE);
      const results = await Promise.all(times.map((at) => store.revoke('k1', at)));
      const winner = results[0]?.revokedAt;
      expect(times).toContain(winner);
      for (const result of results) expect(result).toEqual({ ...userKey('k1'), revokedAt: winner });
      expect((await store.get('k1'))?.revokedAt).toBe(winner);
    });

    test('revoke of an unknown id is null and creates nothing', async () => {
      const { store } = await fresh();
      expect(await store.revoke('nosuchkey000', T0)).toBeNull();
      expect(await store.get('nosuchkey000')).toBeNull();
      expect(await store.list()).toEqual([]);
      // The id is still free.
      await store.insert(userKey('nosuchkey000'));
      expect(await store.get('nosuchkey000')).toEqual(userKey('nosuchkey000'));
    });

    if (options.durable) {
      test('keys and revocations survive close() and reopening', async () => {
        const first = await open();
        opened.push(first);
        if (!first.reopen) throw new Error('a durable store must offer reopen()');
        const kept = userKey('k1', 0, { rateLimitPerMinute: 30 });
        const admin = userKey('k2', 1, { tenant: 'globex', owner: null, role: 'admin' });
        await first.store.insert(kept);
        await first.store.insert(admin);
        await first.store.revoke('k2', T0 + 7 * MINUTE);
        opened.pop();
        const second = await first.reopen();
        opened.push(second);
        const revoked = { ...admin, revokedAt: T0 + 7 * MINUTE };
        expect(await second.store.get('k1')).toEqual(kept);
        expect(await second.store.get('k2')).toEqual(revoked);
        expect(await second.store.list()).toEqual([kept, revoked]);
        expect(await second.store.list('globex')).toEqual([revoked]);
        // What was true before the restart still holds after it.
        expect((await thrown(second.store.insert(userKey('k1')))).code).toBe('INVALID_INPUT');
        expect(await second.store.revoke('k2', T0 + 9 * MINUTE)).toEqual(revoked);
      });
    }

    if (options.shared) {
      const pair = async () => {
        const a = await fresh();
        if (!a.another) throw new Error('a shared store must offer another()');
        const b = await a.another();
        opened.push(b);
        return { a: a.store, b: b.store };
      };

      test('two stores on the same storage see each other’s keys and revocations', async () => {
        const { a, b } = await pair();
        const k1 = userKey('k1', 0);
        const k2 = userKey('k2', 1, { tenant: 'globex', owner: null, role: 'admin' });
        await a.insert(k1);
        expect(await b.get('k1')).toEqual(k1);
        await b.insert(k2);
        expect(await a.list()).toEqual([k1, k2]);
        expect(await a.list('globex')).toEqual([k2]);
        const revoked = { ...k1, revokedAt: T0 + 3 * MINUTE };
        expect(await b.revoke('k1', T0 + 3 * MINUTE)).toEqual(revoked);
        expect(await a.get('k1')).toEqual(revoked);
        expect(await a.revoke('k1', T0 + 4 * MINUTE)).toEqual(revoked);
        expect((await thrown(b.insert(userKey('k1', 9)))).code).toBe('INVALID_INPUT');
        expect(await a.get('k1')).toEqual(revoked);
      });

      test('of two stores inserting one id at once, exactly one wins', async () => {
        const { a, b } = await pair();
        const ids = Array.from({ length: 20 }, (_, i) => `race${i}`);
        const results = await Promise.allSettled(
          ids.flatMap((id) => [
            a.insert(userKey(id, 0, { owner: 'from-a' })),
            b.insert(userKey(id, 0, { owner: 'from-b' })),
          ]),
        );
        for (const [i, id] of ids.entries()) {
          const [fromA, fromB] = [results[2 * i], results[2 * i + 1]];
          const winners = [fromA, fromB].filter((result) => result?.status === 'fulfilled');
          expect(winners, id).toHaveLength(1);
          const owner = fromA?.status === 'fulfilled' ? 'from-a' : 'from-b';
          expect(await a.get(id)).toEqual(userKey(id, 0, { owner }));
          expect(await b.get(id)).toEqual(userKey(id, 0, { owner }));
        }
        expect(await a.list()).toHaveLength(ids.length);
      });
    }
  });
}
