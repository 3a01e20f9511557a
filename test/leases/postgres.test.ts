import pg from 'pg';
import { afterEach, describe, expect, test } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { isSessionHubError } from '../../src/core/errors.js';
import type { Lease } from '../../src/core/lease.js';
import { describeLeaseConformance } from '../../src/testing/index.js';
import { freshPostgresUrl, postgresAvailable, sharedStorage } from '../helpers/backends.js';
import { POSTGRES_URL } from '../helpers/services.js';

/** A fresh schema; every open() is a new backend with its own pool over it. */
/** Fresh storage; every open() is a new backend with its own connection over it. */
async function freshSchema() {
  const storage = await sharedStorage(freshPostgresUrl);
  return { ...storage, schema: storage.url.searchParams.get('schema') as string };
}

// Off CI a missing PostgreSQL skips with instructions; under CI=true the helper throws instead.
describe.skipIf(!postgresAvailable)('postgres', () => {
  describeLeaseConformance('postgres leases', async () => {
    const storage = await freshSchema();
    return {
      manager: async (clock) => (await storage.open(clock)).leases,
      close: () => storage.close(),
    };
  });

  describe('postgres leases, backend specifics', () => {
    const closers: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const close of closers.splice(0)) await close();
    });

    async function setup() {
      const storage = await freshSchema();
      closers.push(() => storage.close());
      return storage;
    }

    test('expiry follows the injected clock, whatever the server clock says', async () => {
      const storage = await setup();
      for (const start of [Date.UTC(2001, 0, 1), Date.UTC(2100, 0, 1)]) {
        const clock = new ManualClock(start);
        const { leases } = await storage.open(clock);
        const resource = `s-${start}`;
        const lease = (await leases.acquire(resource, { holder: 'a', ttlMs: 1000 })) as Lease;
        expect(lease.expiresAt).toBe(start + 1000);
        expect(await leases.current(resource)).toMatchObject({ holder: 'a' });
        clock.advance(1000);
        expect(await leases.current(resource)).toBeNull();
        expect(await leases.acquire(resource, { holder: 'b', ttlMs: 1000 })).toMatchObject({
          fence: 2,
        });
      }
    });

    test('a release keeps the row and clears the token, so the fence survives', async () => {
      const storage = await setup();
      const { leases } = await storage.open(new ManualClock());
      const lease = (await leases.acquire('s1', { holder: 'a', ttlMs: 1000 })) as Lease;
      expect(await leases.release(lease)).toBe(true);
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      try {
        const { rows } = await client.query(
          `SELECT holder, token, fence FROM ${storage.schema}.leases WHERE resource = 's1'`,
        );
        expect(rows).toEqual([{ holder: 'a', token: null, fence: '1' }]);
      } finally {
        await client.end();
      }
    });

    test('resources PostgreSQL cannot store are refused with INVALID_OPTION', async () => {
      const storage = await setup();
      const { leases } = await storage.open(new ManualClock());
      for (const resource of ['nul\u0000byte', 'x'.repeat(1025)]) {
        const error = await leases
          .acquire(resource, { holder: 'a', ttlMs: 1000 })
          .catch((e: unknown) => e);
        expect(isSessionHubError(error, 'INVALID_OPTION')).toBe(true);
      }
      expect(await leases.acquire('x'.repeat(1024), { holder: 'a', ttlMs: 1000 })).not.toBeNull();
    });

    test('a closed backend refuses lease calls with CLOSED', async () => {
      const storage = await setup();
      const backend = await storage.open(new ManualClock());
      await backend.close();
      const error = await backend.leases.current('s1').catch((e: unknown) => e);
      expect(isSessionHubError(error, 'CLOSED')).toBe(true);
    });
  });
});
