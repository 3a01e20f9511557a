import calculateSlot from 'cluster-key-slot';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, test } from 'vitest';
import { leaseKeys } from '../../src/backends/redis/keys.js';
import { ManualClock } from '../../src/core/clock.js';
import { isSessionHubError } from '../../src/core/errors.js';
import type { Lease } from '../../src/core/lease.js';
import { describeLeaseConformance } from '../../src/testing/index.js';
import { freshRedisUrl, redisAvailable, sharedStorage } from '../helpers/backends.js';
import { REDIS_URL } from '../helpers/services.js';

/** A fresh key prefix; every open() is a new backend with its own connection over it. */
/** Fresh storage; every open() is a new backend with its own connection over it. */
async function freshPrefix() {
  const storage = await sharedStorage(freshRedisUrl);
  return { ...storage, prefix: storage.url.searchParams.get('prefix') as string };
}

// Off CI a missing Redis skips with instructions; under CI=true the helper throws instead.
describe.skipIf(!redisAvailable)('redis', () => {
  describeLeaseConformance('redis leases', async () => {
    const storage = await freshPrefix();
    return {
      manager: async (clock) => (await storage.open(clock)).leases,
      close: () => storage.close(),
    };
  });

  describe('redis leases, backend specifics', () => {
    const closers: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const close of closers.splice(0)) await close();
    });

    async function setup() {
      const storage = await freshPrefix();
      closers.push(() => storage.close());
      return storage;
    }

    function client(): Redis {
      const redis = new Redis(REDIS_URL);
      closers.push(async () => {
        redis.disconnect();
      });
      return redis;
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

    test('the server expires a lease HASH only as garbage collection, never the fence', async () => {
      const storage = await setup();
      const clock = new ManualClock();
      const { leases } = await storage.open(clock);
      const redis = client();
      const keys = leaseKeys(storage.prefix, 's1');

      const first = (await leases.acquire('s1', { holder: 'a', ttlMs: 1000 })) as Lease;
      // Far beyond the ttl, so a caller whose clock runs behind the server's never loses it.
      expect(await redis.pttl(keys.lease)).toBeGreaterThan(60 * 60 * 1000);
      expect(await redis.pttl(keys.fence)).toBe(-1);
      const renewed = await leases.renew(first, 5000);
      expect(await redis.pttl(keys.lease)).toBeGreaterThan(60 * 60 * 1000 + 5000);

      // The server collecting an abandoned lease frees it, but the next fence still grows.
      await redis.del(keys.lease);
      expect(await leases.current('s1')).toBeNull();
      expect(await leases.release(renewed)).toBe(false);
      const second = (await leases.acquire('s1', { holder: 'b', ttlMs: 1000 })) as Lease;
      expect(second.fence).toBe(first.fence + 1);

      // A release removes the HASH at once and keeps the counter.
      expect(await leases.release(second)).toBe(true);
      expect(await redis.exists(keys.lease)).toBe(0);
      expect(await redis.get(keys.fence)).toBe(String(second.fence));
    });

    test('both keys of a lease share one slot, and lease tags differ from store tags', async () => {
      const storage = await setup();
      const { leases } = await storage.open(new ManualClock());
      const names = ['a/b', 'a:b', 'a{b}', '}{', '#x', '%23x', 'é😀', 'tab\tbyte'];
      for (const name of names) {
        const keys = leaseKeys(storage.prefix, name);
        expect(calculateSlot(keys.lease)).toBe(calculateSlot(keys.fence));
        expect(keys.lease).toMatch(/^[^{}]*\{#[A-Za-z0-9._%-]+\}:lease$/);
        expect(await leases.acquire(name, { holder: name, ttlMs: 1000 })).not.toBeNull();
      }
      for (const name of names) expect((await leases.current(name))?.holder).toBe(name);
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
