import { afterEach, describe, expect, test } from 'vitest';
import { ManualClock } from '../../core/clock.js';
import { isSessionHubError } from '../../core/errors.js';
import type { Lease, LeaseManager } from '../../core/lease.js';

/** Lease managers opened for one test, all over the same fresh, isolated storage. */
export interface LeasesUnderTest {
  /**
   * A lease manager reading time from `clock`. Calls within one test share storage, so a second
   * call stands for a second process or host.
   */
  manager(clock: ManualClock): Promise<LeaseManager>;
  close(): Promise<void>;
}

const HOUR = 60 * 60 * 1000;
const RACE_TTL_MS = 60_000;

/**
 * Both managers try every resource at once, twice each, in three rounds: on free resources, on
 * expired leases, and on released ones. Each resource must have exactly one winner per round,
 * with the next fence, and both managers must agree on who holds it.
 */
async function raceOnManyResources(
  clock: ManualClock,
  a: LeaseManager,
  b: LeaseManager,
): Promise<void> {
  const resources = Array.from({ length: 100 }, (_, i) => `r${i}`);
  const contenders = [a, b, a, b];
  let winners: Lease[] = [];
  for (const [round, before] of [
    [1, async () => {}],
    [2, async () => clock.advance(RACE_TTL_MS)],
    [3, async () => void (await Promise.all(winners.map((lease) => a.release(lease))))],
  ] as const) {
    await before();
    const results = await Promise.all(
      resources.flatMap((resource) =>
        contenders.map((manager, i) =>
          manager.acquire(resource, { holder: `${resource}/${round}/${i}`, ttlMs: RACE_TTL_MS }),
        ),
      ),
    );
    winners = [];
    for (const [r, resource] of resources.entries()) {
      const won = results
        .slice(r * contenders.length, (r + 1) * contenders.length)
        .filter((lease): lease is Lease => lease !== null);
      expect(won, resource).toHaveLength(1);
      const lease = won[0] as Lease;
      expect(lease.fence, resource).toBe(round);
      winners.push(lease);
    }
    for (const manager of [a, b]) {
      const seen = await Promise.all(resources.map((resource) => manager.current(resource)));
      expect(seen.map((info) => info?.holder)).toEqual(winners.map((lease) => lease.holder));
    }
  }
}

/**
 * Registers the lease conformance suite with vitest. Time comes from a ManualClock that the tests
 * move forward, so expiry is tested without waiting.
 */
export function describeLeaseConformance(name: string, open: () => Promise<LeasesUnderTest>): void {
  describe(name, () => {
    const opened: LeasesUnderTest[] = [];
    afterEach(async () => {
      for (const handle of opened.splice(0)) await handle.close();
    });

    async function setup(start = Date.UTC(2026, 0, 1)) {
      const handle = await open();
      opened.push(handle);
      const clock = new ManualClock(start);
      return { clock, leases: await handle.manager(clock), other: () => handle.manager(clock) };
    }

    test('a free resource is acquired with fence 1 and the given expiry', async () => {
      const { clock, leases } = await setup();
      const lease = (await leases.acquire('s1', { holder: 'a', ttlMs: 1000 })) as Lease;
      expect(lease).toMatchObject({ resource: 's1', holder: 'a', fence: 1, ttlMs: 1000 });
      expect(lease.expiresAt).toBe(clock.now() + 1000);
      expect(typeof lease.token).toBe('string');
      expect(await leases.current('s1')).toEqual({
        resource: 's1',
        holder: 'a',
        fence: 1,
        expiresAt: lease.expiresAt,
      });
    });

    test('a held resource cannot be acquired, by anyone, until it expires', async () => {
      const { clock, leases, other } = await setup();
      const first = (await leases.acquire('s1', { holder: 'a', ttlMs: 1000 })) as Lease;
      const second = await other();
      expect(await second.acquire('s1', { holder: 'b', ttlMs: 1000 })).toBeNull();
      expect(await leases.acquire('s1', { holder: 'a', ttlMs: 1000 })).toBeNull();
      clock.advance(999);
      expect(await second.acquire('s1', { holder: 'b', ttlMs: 1000 })).toBeNull();
      clock.advance(1);
      const taken = await second.acquire('s1', { holder: 'b', ttlMs: 1000 });
      expect(taken).toMatchObject({ holder: 'b', fence: first.fence + 1 });
    });

    test('resources are independent', async () => {
      const { leases } = await setup();
      const a = await leases.acquire('s1', { holder: 'a', ttlMs: 1000 });
      const b = await leases.acquire('s2', { holder: 'a', ttlMs: 1000 });
      expect(a?.fence).toBe(1);
      expect(b?.fence).toBe(1);
    });

    test('renew extends a held lease and refuses one that expired or was taken over', async () => {
      const { clock, leases, other } = await setup();
      const lease = (await leases.acquire('s1', { holder: 'a', ttlMs: 1000 })) as Lease;
      clock.advance(900);
      const renewed = await leases.renew(lease);
      expect(renewed.expiresAt).toBe(clock.now() + 1000);
      expect(renewed.fence).toBe(lease.fence);
      const longer = await leases.renew(renewed, 5000);
      expect(longer.expiresAt).toBe(clock.now() + 5000);
      clock.advance(5000);
      const error = await leases.renew(longer).catch((e: unknown) => e);
      expect(isSessionHubError(error, 'LEASE_LOST')).toBe(true);
      const taken = (await (await other()).acquire('s1', { holder: 'b', ttlMs: 1000 })) as Lease;
      expect(
        isSessionHubError(await leases.renew(longer).catch((e: unknown) => e), 'LEASE_LOST'),
      ).toBe(true);
      expect(await leases.current('s1')).toMatchObject({ holder: 'b', fence: taken.fence });
    });

    test('release frees the resource, and a stale lease cannot release its successor', async () => {
      const { clock, leases, other } = await setup();
      const first = (await leases.acquire('s1', { holder: 'a', ttlMs: 1000 })) as Lease;
      expect(await leases.release(first)).toBe(true);
      expect(await leases.current('s1')).toBeNull();
      expect(await leases.release(first)).toBe(false);

      const second = (await leases.acquire('s1', { holder: 'a', ttlMs: 1000 })) as Lease;
      expect(second.fence).toBe(first.fence + 1);
      clock.advance(1000);
      const third = (await (await other()).acquire('s1', { holder: 'b', ttlMs: 1000 })) as Lease;
      expect(await leases.release(second)).toBe(false);
      expect(await leases.current('s1')).toMatchObject({ holder: 'b', fence: third.fence });
      expect(await leases.release({ ...third, token: 'forged' })).toBe(false);
      expect(await leases.current('s1')).toMatchObject({ holder: 'b' });
    });

    test('validate accepts only the current, unexpired fence', async () => {
      const { clock, leases } = await setup();
      const first = (await leases.acquire('s1', { holder: 'a', ttlMs: 1000 })) as Lease;
      expect(await leases.validate('s1', first.fence)).toBe(true);
      expect(await leases.validate('s1', first.fence + 1)).toBe(false);
      expect(await leases.validate('s2', first.fence)).toBe(false);
      clock.advance(1000);
      expect(await leases.validate('s1', first.fence)).toBe(false);
      const second = (await leases.acquire('s1', { holder: 'b', ttlMs: 1000 })) as Lease;
      expect(await leases.validate('s1', first.fence)).toBe(false);
      expect(await leases.validate('s1', second.fence)).toBe(true);
    });

    test('the fence keeps growing across releases and expiries', async () => {
      const { clock, leases } = await setup();
      const fences: number[] = [];
      for (let i = 0; i < 5; i++) {
        const lease = (await leases.acquire('s1', { holder: 'a', ttlMs: 10 })) as Lease;
        fences.push(lease.fence);
        if (i % 2 === 0) await leases.release(lease);
        else clock.advance(10);
      }
      expect(fences).toEqual([1, 2, 3, 4, 5]);
    });

    test('of many concurrent acquirers, across managers, exactly one wins', async () => {
      const { leases, other } = await setup();
      const managers = [leases, await other(), await other()];
      const results = await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          (managers[i % managers.length] as LeaseManager).acquire('hot', {
            holder: `h${i}`,
            ttlMs: HOUR,
          }),
        ),
      );
      const winners = results.filter((r) => r !== null);
      expect(winners).toHaveLength(1);
      expect(await leases.current('hot')).toMatchObject({ holder: winners[0]?.holder, fence: 1 });
    });

    test('two managers racing on many resources, free, expired and released, never both win one', async () => {
      const { clock, leases, other } = await setup();
      await raceOnManyResources(clock, leases, await other());
    }, 60_000);

    test('bad requests are refused with INVALID_OPTION', async () => {
      const { leases } = await setup();
      for (const [resource, holder, ttlMs] of [
        ['', 'a', 1000],
        ['nul\u0000inside', 'a', 1000],
        ['x'.repeat(1025), 'a', 1000],
        ['s', '', 1000],
        ['s', 'a', 0],
        ['s', 'a', -5],
        ['s', 'a', 1.5],
        ['s', 'a', 48 * HOUR],
      ] as const) {
        const error = await leases.acquire(resource, { holder, ttlMs }).catch((e: unknown) => e);
        expect(isSessionHubError(error, 'INVALID_OPTION')).toBe(true);
      }
      expect(await leases.current('s')).toBeNull();
    });

    test('hostile resource names do not collide', async () => {
      const { leases } = await setup();
      const names = ['a/b', 'a:b', 'a{b}', '..', '%', 'x'.repeat(300), 'é😀', 'a b'];
      for (const name of names) {
        expect(await leases.acquire(name, { holder: name, ttlMs: 1000 })).not.toBeNull();
      }
      for (const name of names) {
        expect((await leases.current(name))?.holder).toBe(name);
      }
    });
  });
}
