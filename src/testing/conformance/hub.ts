/**
 * The hub's behaviour, the same on every backend: records, ownership, expiry and sweeping, usage
 * folded from appended transcripts, limits, forks and lineage, leases, and several hubs on one
 * backend at once. Run it against a backend of your own:
 *
 *   describeHubConformance('my backend', async () => ({ backend, cleanup }), { shared })
 *
 * Time comes from a ManualClock that each test moves by hand; nothing sleeps.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, test } from 'vitest';
import type { Backend } from '../../backends/backend.js';
import { tenantProjectKey } from '../../backends/registry.js';
import { type Clock, ManualClock } from '../../core/clock.js';
import { isSessionHubError, type SessionHubError } from '../../core/errors.js';
import type { Identity } from '../../core/identity.js';
import { decodeCursor, type SessionRecord } from '../../core/session-record.js';
import { createHub, type HubOptions, type SessionHub } from '../../hub/hub.js';
import type { SweepResult } from '../../hub/sweeper.js';
import { syntheticTurn } from '../transcripts.js';

export interface HubBackendUnderTest {
  backend: Backend;
  /** Drops the data (called once the test is done and the backend closed). */
  cleanup(): Promise<void>;
}

export interface HubConformanceOptions {
  /**
   * Opens several backends on the same storage, as several processes or hosts would (PostgreSQL,
   * Redis, a SQLite file). Enables the multi-hub race tests.
   */
  shared?: () => Promise<{ open(clock: Clock): Promise<Backend>; cleanup(): Promise<void> }>;
}

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;
const START = Date.UTC(2026, 2, 1, 12);

const alice: Identity = { tenant: 'acme', owner: 'alice' };
const bob: Identity = { tenant: 'acme', owner: 'bob' };
const acmeAdmin: Identity = { tenant: 'acme', admin: true };
const mallory: Identity = { tenant: 'evil', owner: 'alice' };
const evilAdmin: Identity = { tenant: 'evil', admin: true };

async function thrown(promise: Promise<unknown>): Promise<SessionHubError> {
  try {
    await promise;
  } catch (error) {
    if (isSessionHubError(error)) return error;
    throw error;
  }
  throw new Error('expected the call to throw a SessionHubError');
}

export function describeHubConformance(
  name: string,
  open: (clock: Clock) => Promise<HubBackendUnderTest>,
  options: HubConformanceOptions = {},
): void {
  describe(`hub on ${name}`, () => {
    const opened: Array<() => Promise<void>> = [];

    afterEach(async () => {
      for (const close of opened.splice(0).reverse()) await close();
    });

    async function setup(hubOptions: Omit<HubOptions, 'backend' | 'clock'> = {}) {
      const clock = new ManualClock(START);
      const { backend, cleanup } = await open(clock);
      const hub = createHub({ ...hubOptions, backend, clock });
      opened.push(async () => {
        await hub.close();
        await backend.close();
        await cleanup();
      });
      return { clock, backend, hub };
    }

    /** Appends a turn to a session's transcript as the SDK would, through the hub's store. */
    async function appendTurn(
      hub: SessionHub,
      who: Identity,
      sessionId: string,
      turn: Parameters<typeof syntheticTurn>[0] extends infer T ? Omit<T, 'sessionId'> : never,
    ) {
      const made = syntheticTurn({ sessionId, ...turn });
      await hub.transcriptStore(who).append({ projectKey: '/any/cwd', sessionId }, made.entries);
      return made;
    }

    describe('records', () => {
      test('create fills every field from the policies and get returns the same record', async () => {
        const { hub } = await setup();
        const created = await hub.create(alice, {
          title: 'Support chat',
          tags: ['support', 'eu', 'support'],
          metadata: { ticket: 42 },
        });
        expect(created).toMatchObject({
          tenant: 'acme',
          owner: 'alice',
          title: 'Support chat',
          tags: ['support', 'eu'],
          metadata: { ticket: 42 },
          status: 'active',
          createdAt: START,
          lastActiveAt: START,
          expiresAt: START + 30 * DAY,
          expiredAt: null,
          purgeAt: START + 37 * DAY,
          forkedFrom: null,
          version: 1,
        });
        expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
        expect(created.usage.costUsd).toBe(0);
        expect(created.usage.turns).toBe(0);
        expect(await hub.get(alice, created.id)).toEqual(created);
      });

      test('bad input is refused with INVALID_INPUT and stores nothing', async () => {
        const { hub } = await setup();
        for (const input of [
          { title: 'x'.repeat(201) },
          { tags: ['has space'] },
          { tags: Array.from({ length: 33 }, (_, i) => `t${i}`) },
          { metadata: { big: 'x'.repeat(20_000) } },
          { id: 'not-a-uuid' },
          { expiry: { idleTtlMs: -5 } },
          { colour: 'red' },
        ]) {
          expect((await thrown(hub.create(alice, input as never))).code).toBe('INVALID_INPUT');
        }
        expect((await hub.list(acmeAdmin)).sessions).toEqual([]);
        expect((await thrown(hub.get(alice, 'nope'))).code).toBe('INVALID_INPUT');
      });

      test('an id can be chosen once per tenant; another tenant may use it too', async () => {
        const { hub } = await setup();
        const id = randomUUID();
        await hub.create(alice, { id });
        const again = await thrown(hub.create(bob, { id }));
        expect(again.code).toBe('SESSION_EXISTS');
        const other = await hub.create(mallory, { id });
        expect(other.tenant).toBe('evil');
        expect((await hub.get(alice, id)).owner).toBe('alice');
      });

      test('a user cannot register an id whose transcript exists; an admin adopts it with its usage', async () => {
        const { hub, backend } = await setup();
        const id = randomUUID();
        const turn = syntheticTurn({ sessionId: id, cumulativeCostUsd: 0.2 });
        await backend.store.append(
          { projectKey: tenantProjectKey('acme'), sessionId: id },
          turn.entries,
        );
        expect((await thrown(hub.create(alice, { id }))).code).toBe('SESSION_EXISTS');
        const adopted = await hub.create(acmeAdmin, { id, owner: 'bob' });
        expect(adopted.owner).toBe('bob');
        expect(adopted.usage.turns).toBe(1);
        expect(adopted.usage.costUsd).toBeCloseTo(0.2, 9);
        expect(
          await hub.transcriptStore(bob).load({ projectKey: 'x', sessionId: id }),
        ).toHaveLength(turn.entries.length);
      });

      test('rename, tag, untag and metadata change the record and bump its version', async () => {
        const { hub } = await setup();
        const { id } = await hub.create(alice);
        await hub.rename(alice, id, 'Renamed');
        await hub.tag(alice, id, ['a', 'b']);
        await hub.tag(alice, id, 'c');
        await hub.untag(alice, id, 'a');
        const last = await hub.setMetadata(alice, id, { plan: 'pro', seats: 3 });
        expect(last).toMatchObject({
          title: 'Renamed',
          tags: ['b', 'c'],
          metadata: { plan: 'pro', seats: 3 },
          version: 6,
        });
        expect(await hub.get(alice, id)).toEqual(last);
        expect((await hub.rename(alice, id, null)).title).toBeNull();
        expect((await thrown(hub.tag(alice, id, 'no,commas'))).code).toBe('INVALID_INPUT');
      });

      test('who may create what: users their own sessions, admins for anyone and with limits', async () => {
        const { hub } = await setup();
        expect((await thrown(hub.create(alice, { owner: 'bob' }))).code).toBe('FORBIDDEN');
        expect((await thrown(hub.create(alice, { limits: { maxTurnsPerSession: 99 } }))).code).toBe(
          'FORBIDDEN',
        );
        expect((await thrown(hub.create(acmeAdmin))).code).toBe('INVALID_INPUT');
        const forBob = await hub.create(acmeAdmin, {
          owner: 'bob',
          limits: { maxTurnsPerSession: 5 },
        });
        expect(forBob.owner).toBe('bob');
        expect(forBob.limits.maxTurnsPerSession).toBe(5);
        expect(forBob.overrides.limits).toEqual({ maxTurnsPerSession: 5 });
      });
    });

    describe('ownership', () => {
      test("another owner's or tenant's session behaves as if it did not exist", async () => {
        const { hub } = await setup();
        const { id } = await hub.create(alice, { title: 'private' });
        const calls: Array<(who: Identity) => Promise<unknown>> = [
          (who) => hub.get(who, id),
          (who) => hub.rename(who, id, 'mine now'),
          (who) => hub.tag(who, id, 'x'),
          (who) => hub.setMetadata(who, id, {}),
          (who) => hub.archive(who, id),
          (who) => hub.extend(who, id, { byMs: DAY }),
          (who) => hub.expire(who, id),
          (who) => hub.delete(who, id),
          (who) => hub.fork(who, id),
          (who) => hub.lineage(who, id),
          (who) => hub.admitTurn(who, id),
          (who) => hub.acquireLease(who, id, { ttlMs: 1000 }),
        ];
        for (const who of [bob, mallory, evilAdmin]) {
          for (const call of calls) {
            const error = await thrown(call(who));
            expect(error.code).toBe('SESSION_NOT_FOUND');
            expect(error.message).not.toContain('alice');
          }
          expect((await hub.list(who)).sessions).toEqual([]);
          expect((await hub.list(who, { owner: 'alice' })).sessions).toEqual([]);
          expect((await hub.stats(who)).sessions.total).toBe(0);
        }
        expect(await hub.get(alice, id)).toMatchObject({ title: 'private', version: 1 });
        expect((await hub.get(acmeAdmin, id)).owner).toBe('alice');
        expect((await hub.stats(acmeAdmin)).sessions.total).toBe(1);
      });

      test('transcripts of different tenants live under different keys whatever the cwd', async () => {
        const { hub, backend } = await setup();
        const id = randomUUID();
        await hub.create(alice, { id });
        await hub.create(mallory, { id });
        await appendTurn(hub, alice, id, { prompt: 'acme secret' });
        const evilStore = hub.transcriptStore(mallory);
        expect(await evilStore.load({ projectKey: '/any/cwd', sessionId: id })).toBeNull();
        await appendTurn(hub, mallory, id, { prompt: 'evil words' });
        const acme = await backend.store.load({
          projectKey: tenantProjectKey('acme'),
          sessionId: id,
        });
        const evil = await backend.store.load({
          projectKey: tenantProjectKey('evil'),
          sessionId: id,
        });
        expect(JSON.stringify(acme)).toContain('acme secret');
        expect(JSON.stringify(acme)).not.toContain('evil words');
        expect(JSON.stringify(evil)).toContain('evil words');
        expect(JSON.stringify(evil)).not.toContain('acme secret');
      });

      test("a user's transcript store hides other owners' sessions and refuses writes to them", async () => {
        const { hub } = await setup();
        const { id } = await hub.create(alice);
        await appendTurn(hub, alice, id, { prompt: 'hello' });
        const bobs = hub.transcriptStore(bob);
        const key = { projectKey: 'whatever', sessionId: id };
        expect(await bobs.load(key)).toBeNull();
        expect(await bobs.listSessions('whatever')).toEqual([]);
        expect(await bobs.listSubkeys(key)).toEqual([]);
        expect((await thrown(bobs.append(key, [{ type: 'user', uuid: randomUUID() }]))).code).toBe(
          'SESSION_NOT_FOUND',
        );
        await bobs.delete(key);
        const alices = hub.transcriptStore(alice);
        expect(await alices.load(key)).toHaveLength(2);
        expect((await alices.listSessions('x')).map((s) => s.sessionId)).toEqual([id]);
        expect(await hub.transcriptStore(acmeAdmin).load(key)).toHaveLength(2);
      });
    });

    describe('listing', () => {
      test('filters by owner, status, tag, title text and time ranges', async () => {
        const { hub, clock } = await setup();
        const a = await hub.create(alice, { title: 'Refund request', tags: ['billing'] });
        clock.advance(1000);
        const b = await hub.create(alice, { title: 'Login trouble', tags: ['auth'] });
        clock.advance(1000);
        const c = await hub.create(bob, { title: 'REFUND again', tags: ['billing'] });
        await hub.archive(alice, b.id);
        clock.advance(1000);
        await hub.recordActivity(bob, c.id);
        const ids = async (who: Identity, query: Record<string, unknown> = {}) =>
          (await hub.list(who, query)).sessions.map((s) => s.id);
        expect(await ids(acmeAdmin)).toEqual([c.id, b.id, a.id]);
        expect(await ids(alice)).toEqual([b.id, a.id]);
        expect(await ids(acmeAdmin, { owner: 'bob' })).toEqual([c.id]);
        expect(await ids(acmeAdmin, { status: 'archived' })).toEqual([b.id]);
        expect(await ids(acmeAdmin, { status: ['active', 'archived'] })).toEqual([
          c.id,
          b.id,
          a.id,
        ]);
        expect(await ids(acmeAdmin, { tag: 'billing' })).toEqual([c.id, a.id]);
        expect(await ids(acmeAdmin, { titleContains: 'refund' })).toEqual([c.id, a.id]);
        expect(await ids(acmeAdmin, { titleContains: '%' })).toEqual([]);
        expect(await ids(acmeAdmin, { createdFrom: START + 1000 })).toEqual([c.id, b.id]);
        expect(await ids(acmeAdmin, { createdTo: START + 1000 })).toEqual([a.id]);
        expect(await ids(acmeAdmin, { activeFrom: START + 3000 })).toEqual([c.id]);
        expect(await ids(acmeAdmin, { activeTo: START + 3000 })).toEqual([b.id, a.id]);
        expect(await ids(acmeAdmin, { tag: 'billing', owner: 'alice' })).toEqual([a.id]);
      });

      test('the status filter reads the status as of now, before any sweep', async () => {
        const { hub, clock } = await setup({ expiry: { idleTtlMs: HOUR } });
        const old = await hub.create(alice);
        clock.advance(30 * 60 * 1000);
        const fresh = await hub.create(alice);
        clock.advance(31 * 60 * 1000);
        const list = async (status: string) =>
          (await hub.list(alice, { status })).sessions.map((s) => s.id);
        expect(await list('expired')).toEqual([old.id]);
        expect(await list('active')).toEqual([fresh.id]);
        expect((await hub.get(alice, old.id)).status).toBe('expired');
      });

      test('pages: every session exactly once while others are created and deleted', async () => {
        const { hub, clock } = await setup();
        const kept: string[] = [];
        for (let i = 0; i < 23; i++) {
          // Pairs share a creation time, so the id has to break ties.
          if (i % 2 === 0) clock.advance(1);
          kept.push((await hub.create(alice, { tags: ['kept'] })).id);
        }
        const seen: string[] = [];
        let cursor: string | undefined;
        let churn: string[] = [];
        for (let page = 0; page < 20; page++) {
          const result = await hub.list(alice, { limit: 5, tag: 'kept', cursor });
          seen.push(...result.sessions.map((s) => s.id));
          for (const id of churn) await hub.delete(alice, id);
          clock.advance(1);
          churn = [
            (await hub.create(alice, { tags: ['kept'] })).id,
            (await hub.create(alice, { tags: ['kept'] })).id,
          ];
          if (result.nextCursor === null) break;
          cursor = result.nextCursor;
          expect(decodeCursor(cursor).id).toBe(result.sessions.at(-1)?.id);
        }
        // Sessions created during paging are newer than the cursor and land before it.
        expect(seen.filter((id) => kept.includes(id)).sort()).toEqual([...kept].sort());
        expect(new Set(seen).size).toBe(seen.length);
      });

      test('a cursor that was not issued is refused', async () => {
        const { hub } = await setup();
        expect((await thrown(hub.list(alice, { cursor: 'garbage!' }))).code).toBe('INVALID_INPUT');
        expect((await thrown(hub.list(alice, { limit: 500 }))).code).toBe('INVALID_INPUT');
      });
    });

    describe('expiry', () => {
      test('an idle session expires; a turn on it is refused with when and how to extend', async () => {
        const { hub, clock } = await setup({ expiry: { idleTtlMs: HOUR, retentionMs: DAY } });
        const { id } = await hub.create(alice);
        clock.advance(HOUR - 1);
        await hub.admitTurn(alice, id);
        clock.advance(1);
        const error = await thrown(hub.admitTurn(alice, id));
        expect(error.code).toBe('SESSION_EXPIRED');
        expect(error.details).toMatchObject({ sessionId: id, expiredAt: START + HOUR });
        expect(error.message).toContain('xtend');
        expect(await hub.get(alice, id)).toMatchObject({
          status: 'expired',
          expiredAt: START + HOUR,
          purgeAt: START + HOUR + DAY,
        });
      });

      test('the SDK cannot resume an expired session through the hub store until it is extended', async () => {
        const { hub, clock } = await setup({ expiry: { idleTtlMs: HOUR } });
        const { id } = await hub.create(alice);
        await appendTurn(hub, alice, id, { prompt: 'before' });
        const store = hub.transcriptStore(alice);
        const key = { projectKey: 'cwd', sessionId: id };
        clock.advance(HOUR);
        const refused = await thrown(store.load(key));
        expect(refused.code).toBe('SESSION_EXPIRED');
        expect(refused.details.expiredAt).toBe(START + HOUR);
        await hub.extend(alice, id, { byMs: HOUR });
        expect(JSON.stringify(await store.load(key))).toContain('before');
      });

      test('activity pushes the idle deadline when extend-on-activity is on, and only then', async () => {
        const on = await setup({ expiry: { idleTtlMs: HOUR } });
        const a = await on.hub.create(alice);
        on.clock.advance(HOUR / 2);
        expect((await on.hub.recordActivity(alice, a.id)).expiresAt).toBe(START + HOUR / 2 + HOUR);

        const off = await setup({ expiry: { idleTtlMs: HOUR, extendOnActivity: false } });
        const b = await off.hub.create(alice);
        off.clock.advance(HOUR / 2);
        const touched = await off.hub.recordActivity(alice, b.id);
        expect(touched.lastActiveAt).toBe(START + HOUR / 2);
        expect(touched.expiresAt).toBe(START + HOUR);
      });

      test('the absolute TTL holds however active the session is', async () => {
        const { hub, clock } = await setup({
          expiry: { absoluteTtlMs: 3 * HOUR, idleTtlMs: HOUR },
        });
        const { id } = await hub.create(alice);
        for (let i = 0; i < 5; i++) {
          clock.advance(HOUR - 1);
          if (clock.now() < START + 3 * HOUR) await hub.recordActivity(alice, id);
        }
        expect((await hub.get(alice, id)).status).toBe('expired');
        expect((await hub.get(alice, id)).expiresAt).toBe(START + 3 * HOUR);
      });

      test('policy set per hub, overridden per tenant, overridden per session', async () => {
        const { hub } = await setup({
          expiry: { idleTtlMs: HOUR },
          tenants: { evil: { expiry: { idleTtlMs: 2 * HOUR, retentionMs: 0 } } },
        });
        expect((await hub.create(alice)).expiresAt).toBe(START + HOUR);
        const evil = await hub.create(mallory);
        expect(evil.expiresAt).toBe(START + 2 * HOUR);
        expect(evil.purgeAt).toBe(START + 2 * HOUR);
        const own = await hub.create(mallory, { expiry: { idleTtlMs: null } });
        expect(own.expiresAt).toBeNull();
        expect(own.expiry).toMatchObject({ idleTtlMs: null, retentionMs: 0 });
        const changed = await hub.setOverrides(alice, (await hub.create(alice)).id, {
          expiry: { idleTtlMs: 5 * HOUR },
        });
        expect(changed.expiresAt).toBe(START + 5 * HOUR);
      });

      test('extend pushes the deadline, and brings back an expired session within retention', async () => {
        const { hub, clock } = await setup({ expiry: { idleTtlMs: HOUR, retentionMs: DAY } });
        const { id } = await hub.create(alice);
        expect((await hub.extend(alice, id, { byMs: HOUR })).expiresAt).toBe(START + 2 * HOUR);
        clock.advance(3 * HOUR);
        expect((await hub.get(alice, id)).status).toBe('expired');
        await hub.sweep();
        const revived = await hub.extend(alice, id, { byMs: HOUR });
        expect(revived).toMatchObject({ status: 'active', expiredAt: null });
        expect(revived.expiresAt).toBe(clock.now() + HOUR);
        await hub.admitTurn(alice, id);
        const until = clock.now() + 10 * DAY;
        expect((await hub.extend(alice, id, { until })).expiresAt).toBe(until);
        expect((await thrown(hub.extend(alice, id, { until: clock.now() - 1 }))).code).toBe(
          'INVALID_INPUT',
        );
        expect((await thrown(hub.extend(alice, id, { byMs: -1 } as never))).code).toBe(
          'INVALID_INPUT',
        );
      });

      test('archived sessions never expire and take no turns until unarchived', async () => {
        const { hub, clock } = await setup({
          expiry: { idleTtlMs: HOUR, absoluteTtlMs: 2 * HOUR, retentionMs: 0 },
        });
        const { id } = await hub.create(alice);
        const archived = await hub.archive(alice, id);
        expect(archived).toMatchObject({ status: 'archived', expiresAt: null, purgeAt: null });
        clock.advance(365 * DAY);
        expect(await hub.sweep()).toMatchObject({ expired: 0, purged: 0 });
        expect((await thrown(hub.admitTurn(alice, id))).code).toBe('SESSION_ARCHIVED');
        // Unarchiving is activity, but the absolute TTL from creation is long gone: the session
        // reads as expired at once, and needs an extension to take turns.
        const back = await hub.unarchive(alice, id);
        expect(back).toMatchObject({ status: 'expired', lastActiveAt: clock.now() });
        expect(back.expiresAt).toBe(START + 2 * HOUR);
        expect((await thrown(hub.archive(alice, id))).code).toBe('SESSION_EXPIRED');
        await hub.extend(alice, id, { byMs: HOUR });
        await hub.admitTurn(alice, id);
      });

      test('expire ends a session now; the purge follows once retention has passed', async () => {
        const { hub, clock, backend } = await setup({ expiry: { retentionMs: DAY } });
        const { id } = await hub.create(alice);
        await appendTurn(hub, alice, id, { prompt: 'bye' });
        const expired = await hub.expire(alice, id);
        expect(expired).toMatchObject({
          status: 'expired',
          expiredAt: START,
          purgeAt: START + DAY,
        });
        expect((await hub.sweep()).purged).toBe(0);
        clock.advance(DAY);
        expect((await hub.sweep()).purged).toBe(1);
        expect((await thrown(hub.get(alice, id))).code).toBe('SESSION_NOT_FOUND');
        expect(
          await backend.store.load({ projectKey: tenantProjectKey('acme'), sessionId: id }),
        ).toBeNull();
      });
    });

    describe('sweeping', () => {
      test('expires what is due and purges what is past retention, in batches, idempotently', async () => {
        const { hub, clock } = await setup({ expiry: { idleTtlMs: HOUR, retentionMs: HOUR } });
        const early: string[] = [];
        for (let i = 0; i < 7; i++) early.push((await hub.create(alice)).id);
        clock.advance(HOUR / 2);
        const late: string[] = [];
        for (let i = 0; i < 3; i++) late.push((await hub.create(bob)).id);
        clock.advance(HOUR / 2);

        let stats = await hub.stats(acmeAdmin);
        expect(stats.sessions).toMatchObject({ total: 10, dueToExpire: 7, dueToPurge: 0 });
        expect(stats.sessions.byStatus).toMatchObject({ active: 3, expired: 7 });
        const first = await hub.sweep({ batchSize: 3 });
        expect(first).toMatchObject({ ran: true, expired: 7, purged: 0 });
        expect(await hub.sweep({ batchSize: 3 })).toMatchObject({ expired: 0, purged: 0 });
        stats = await hub.stats(acmeAdmin);
        expect(stats.sessions).toMatchObject({ total: 10, dueToExpire: 0, dueToPurge: 0 });

        clock.advance(HOUR);
        expect(await hub.sweep({ batchSize: 2 })).toMatchObject({ expired: 3, purged: 7 });
        const left = (await hub.list(acmeAdmin)).sessions;
        expect(left.map((s) => s.id).sort()).toEqual([...late].sort());
        expect(left.every((s) => s.status === 'expired')).toBe(true);
        clock.advance(HOUR);
        expect(await hub.sweep()).toMatchObject({ expired: 0, purged: 3 });
        expect((await hub.stats(acmeAdmin)).sessions.total).toBe(0);
      });

      test('a session long past its deadline and its retention goes in one sweep', async () => {
        const { hub, clock, backend } = await setup({
          expiry: { idleTtlMs: HOUR, retentionMs: HOUR },
        });
        const { id } = await hub.create(alice);
        await appendTurn(hub, alice, id, { prompt: 'old' });
        clock.advance(3 * HOUR);
        expect((await hub.stats(acmeAdmin)).sessions).toMatchObject({
          dueToExpire: 1,
          dueToPurge: 1,
        });
        const result = await hub.sweep();
        expect(result.purged).toBe(1);
        expect(result.expired).toBeLessThanOrEqual(1);
        expect(await backend.registry.get('acme', id)).toBeNull();
        expect(
          await backend.store.load({ projectKey: tenantProjectKey('acme'), sessionId: id }),
        ).toBeNull();
      });

      test('a failed session (its last turn failed) lists as failed, and expires and purges like an active one', async () => {
        const { hub, clock, backend } = await setup({
          expiry: { idleTtlMs: HOUR, retentionMs: HOUR },
        });
        const failed = (await hub.create(alice)).id;
        const active = (await hub.create(alice)).id;
        clock.advance(HOUR / 2);
        const marked = await hub.recordActivity(alice, failed, { failed: true });
        expect(marked.status).toBe('failed');
        // The failed turn was activity: its idle deadline moved like any turn's.
        expect(marked.expiresAt).toBe(START + HOUR / 2 + HOUR);
        const listed = async (status: SessionRecord['status']) =>
          (await hub.list(alice, { status: [status] })).sessions.map((s) => s.id);
        expect(await listed('failed')).toEqual([failed]);
        expect((await hub.stats(acmeAdmin)).sessions.byStatus).toMatchObject({
          active: 1,
          failed: 1,
        });

        clock.advance(HOUR);
        // Past its deadline: it reads as expired before any sweep, and the sweep marks it.
        expect((await hub.get(alice, failed)).status).toBe('expired');
        expect(await listed('failed')).toEqual([]);
        expect((await hub.stats(acmeAdmin)).sessions).toMatchObject({ dueToExpire: 2 });
        expect(await hub.sweep()).toMatchObject({ expired: 2 });
        expect((await backend.registry.get('acme', failed))?.status).toBe('expired');
        expect((await thrown(hub.recordActivity(alice, failed))).code).toBe('SESSION_EXPIRED');

        clock.advance(HOUR);
        expect(await hub.sweep()).toMatchObject({ purged: 2 });
        expect(await backend.registry.get('acme', active)).toBeNull();
        expect(await backend.registry.get('acme', failed)).toBeNull();
      });

      test('hooks hear of each session a sweep expires and purges, once; a throwing hook stops nothing', async () => {
        const heard: string[] = [];
        const errors: string[] = [];
        const { hub, clock } = await setup({
          expiry: { idleTtlMs: HOUR, retentionMs: HOUR },
          hooks: {
            onExpiry: ({ session, reason }) => {
              heard.push(`expired ${reason} ${session.tenant}/${session.id}`);
              if (heard.length === 1) throw new Error('first hook call fails');
            },
            onSessionEnd: ({ session, reason }) => {
              heard.push(`ended ${reason} ${session.tenant}/${session.id}`);
            },
            onError: (_error, hook) => errors.push(hook),
          },
        });
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) ids.push((await hub.create(alice)).id);
        clock.advance(HOUR);
        expect(await hub.sweep({ batchSize: 2 })).toMatchObject({ expired: 5, purged: 0 });
        expect(await hub.sweep()).toMatchObject({ expired: 0, purged: 0 });
        clock.advance(HOUR);
        expect(await hub.sweep({ batchSize: 2 })).toMatchObject({ expired: 0, purged: 5 });
        const expected = [
          ...ids.map((id) => `expired swept acme/${id}`),
          ...ids.map((id) => `ended purged acme/${id}`),
        ];
        expect([...heard].sort()).toEqual(expected.sort());
        expect(errors).toEqual(['onExpiry']);
      });

      test('a good turn makes a failed session active again', async () => {
        const { hub } = await setup();
        const { id } = await hub.create(alice);
        expect((await hub.recordActivity(alice, id, { failed: true })).status).toBe('failed');
        expect((await hub.recordActivity(alice, id, { failed: true })).status).toBe('failed');
        expect((await hub.recordActivity(alice, id)).status).toBe('active');
        await hub.archive(alice, id);
        // A turn that ended after the session was archived leaves it archived.
        expect((await hub.recordActivity(alice, id, { failed: true })).status).toBe('archived');
      });

      test('maxBatches bounds one sweep; the next one carries on', async () => {
        const { hub, clock } = await setup({ expiry: { idleTtlMs: HOUR } });
        for (let i = 0; i < 5; i++) await hub.create(alice);
        clock.advance(HOUR);
        expect((await hub.sweep({ batchSize: 2, maxBatches: 1 })).expired).toBe(2);
        expect((await hub.sweep({ batchSize: 2 })).expired).toBe(3);
        expect((await thrown(hub.sweep({ batchSize: 0 }))).code).toBe('INVALID_OPTION');
        expect(() => hub.startSweeping(-1)).toThrow(/positive whole number/);
      });

      test('the background sweep runs on the injected timer and stops with the hub', async () => {
        const ticks: Array<() => void> = [];
        let cleared = 0;
        const timers = {
          setInterval: (callback: () => void) => ticks.push(callback),
          clearInterval: () => {
            cleared++;
          },
        };
        const errors: unknown[] = [];
        const { hub, clock } = await setup({
          expiry: { idleTtlMs: HOUR },
          sweep: { intervalMs: 60_000 },
          timers,
          onSweepError: (error) => errors.push(error),
        });
        const { id } = await hub.create(alice);
        clock.advance(HOUR);
        expect(ticks).toHaveLength(1);
        ticks[0]?.();
        await hub.close();
        expect(cleared).toBe(1);
        expect(errors).toEqual([]);
        const stored = await hub.backend.registry.get('acme', id);
        expect(stored?.status).toBe('expired');
      });

      test('a delete removes the record, the transcript and every subagent transcript', async () => {
        const { hub, backend } = await setup();
        const { id } = await hub.create(alice);
        const store = hub.transcriptStore(alice);
        await appendTurn(hub, alice, id, { prompt: 'main' });
        await store.append({ projectKey: 'x', sessionId: id, subpath: 'subagents/agent-1' }, [
          { type: 'user', uuid: randomUUID() },
        ]);
        await hub.delete(alice, id);
        const ref = { projectKey: tenantProjectKey('acme'), sessionId: id };
        expect(await backend.store.load(ref)).toBeNull();
        expect(await backend.store.load({ ...ref, subpath: 'subagents/agent-1' })).toBeNull();
        expect(await backend.store.listSubkeys(ref)).toEqual([]);
        expect(await backend.store.listSessions(ref.projectKey)).toEqual([]);
        expect(await backend.registry.get('acme', id)).toBeNull();
        expect((await thrown(hub.delete(alice, id))).code).toBe('SESSION_NOT_FOUND');
      });
    });

    describe('usage and limits', () => {
      test('usage is folded from appended transcripts, even ones written without the hub', async () => {
        const { hub, backend } = await setup();
        const { id } = await hub.create(alice);
        const key = { projectKey: tenantProjectKey('acme'), sessionId: id };
        const one = syntheticTurn({
          sessionId: id,
          tokens: { input: 100, output: 20 },
          cumulativeCostUsd: 0.01,
        });
        // A process with nothing but the store writes the turn, and the SDK retries the append.
        await backend.store.append(key, one.entries);
        await backend.store.append(key, one.entries);
        const two = syntheticTurn({
          sessionId: id,
          parentUuid: one.assistantUuid,
          tokens: { input: 150, output: 30 },
          cumulativeTokens: { input: 250, output: 50 },
          cumulativeCostUsd: 0.025,
        });
        await backend.store.append(key, two.entries);
        const { usage } = await hub.get(alice, id);
        expect(usage.turns).toBe(2);
        expect(usage.costUsd).toBeCloseTo(0.025, 9);
        expect(usage.tokens).toMatchObject({ inputTokens: 250, outputTokens: 50 });
        expect(usage.byModel['claude-test']?.costUsd).toBeCloseTo(0.025, 9);

        const stats = await hub.stats(acmeAdmin);
        expect(stats.usage.total.costUsd).toBeCloseTo(0.025, 9);
        expect(stats.usage.total.turns).toBe(2);
        expect(stats.usage.byOwner).toEqual([
          expect.objectContaining({ owner: 'alice', turns: 2 }),
        ]);
        expect(stats.usage.byDay).toEqual([
          expect.objectContaining({ day: '2026-03-01', turns: 2 }),
        ]);
        expect((await hub.stats(bob)).usage.total.turns).toBe(0);
      });

      test('the day is charged completed turns only: a dead turn shows its tokens on the session alone', async () => {
        const { hub, backend } = await setup();
        const { id } = await hub.create(alice);
        const key = { projectKey: tenantProjectKey('acme'), sessionId: id };
        const done = syntheticTurn({
          sessionId: id,
          tokens: { input: 100, output: 20 },
          cumulativeCostUsd: 0.01,
        });
        await backend.store.append(key, done.entries);
        // The next turn's process dies after its API call, before it writes a cost-state.
        const died = syntheticTurn({
          sessionId: id,
          parentUuid: done.assistantUuid,
          tokens: { input: 40, output: 7 },
        });
        await backend.store.append(key, died.entries);
        const during = await hub.get(alice, id);
        expect(during.usage.turns).toBe(1);
        expect(during.usage.tokens).toMatchObject({ inputTokens: 140, outputTokens: 27 });
        expect(during.usage.pendingTokens).toMatchObject({ inputTokens: 40, outputTokens: 7 });
        const charged = (await hub.stats(acmeAdmin)).usage.total;
        expect(charged.turns).toBe(1);
        expect(charged.costUsd).toBeCloseTo(0.01, 9);
        expect(charged.tokens).toMatchObject({ inputTokens: 100, outputTokens: 20 });

        // The next process restores the SDK's counter from the last cost-state: its turn's
        // cost-state replaces the pending tokens, and the day gets exactly what it counted.
        const next = syntheticTurn({
          sessionId: id,
          parentUuid: died.assistantUuid,
          tokens: { input: 50, output: 10 },
          cumulativeTokens: { input: 150, output: 30 },
          cumulativeCostUsd: 0.025,
        });
        await backend.store.append(key, next.entries);
        const after = await hub.get(alice, id);
        expect(after.usage.turns).toBe(2);
        expect(after.usage.tokens).toMatchObject({ inputTokens: 150, outputTokens: 30 });
        expect(after.usage.pendingTokens).toMatchObject({ inputTokens: 0, outputTokens: 0 });
        const total = (await hub.stats(acmeAdmin)).usage.total;
        expect(total.turns).toBe(2);
        expect(total.costUsd).toBeCloseTo(0.025, 9);
        expect(total.tokens).toEqual(after.usage.tokens);
      });

      test('spend stays on the owner and the day it happened, also after the session is gone', async () => {
        const { hub, clock } = await setup();
        const a = await hub.create(alice);
        await appendTurn(hub, alice, a.id, { cumulativeCostUsd: 0.5 });
        clock.advance(DAY);
        const b = await hub.create(bob);
        await appendTurn(hub, bob, b.id, { cumulativeCostUsd: 0.25 });
        await hub.delete(alice, a.id);
        const stats = await hub.stats(acmeAdmin);
        expect(stats.usage.byDay.map((d) => [d.day, d.costUsd])).toEqual([
          ['2026-03-01', 0.5],
          ['2026-03-02', 0.25],
        ]);
        expect(stats.usage.byOwner.map((o) => [o.owner, o.costUsd])).toEqual([
          ['alice', 0.5],
          ['bob', 0.25],
        ]);
        const narrow = await hub.stats(acmeAdmin, { fromDay: '2026-03-02', toDay: '2026-03-02' });
        expect(narrow.usage.total.costUsd).toBe(0.25);
      });

      test('limits: sessions per owner, turns and cost per session, cost per owner per day', async () => {
        const { hub, clock } = await setup({
          limits: { maxSessionsPerOwner: 2, maxTurnsPerSession: 2 },
          tenants: { acme: { limits: { maxCostPerSessionUsd: 1, maxCostPerOwnerPerDayUsd: 1.5 } } },
        });
        const a = await hub.create(alice);
        const b = await hub.create(alice);
        const third = await thrown(hub.create(alice));
        expect(third.code).toBe('LIMIT_EXCEEDED');
        expect(third.details).toEqual({ limit: 'maxSessionsPerOwner', current: 2, max: 2 });
        expect(third.message).toContain('sessions per owner');
        await hub.create(bob);

        expect((await hub.admitTurn(alice, a.id)).maxBudgetUsd).toBe(1);
        const first = await appendTurn(hub, alice, a.id, { cumulativeCostUsd: 0.4 });
        expect((await hub.admitTurn(alice, a.id)).maxBudgetUsd).toBeCloseTo(0.6, 9);
        await appendTurn(hub, alice, a.id, {
          parentUuid: first.assistantUuid,
          cumulativeCostUsd: 0.8,
        });
        const turns = await thrown(hub.admitTurn(alice, a.id));
        expect(turns.details).toEqual({ limit: 'maxTurnsPerSession', current: 2, max: 2 });

        await appendTurn(hub, alice, b.id, { cumulativeCostUsd: 1.2 });
        const cost = await thrown(hub.admitTurn(alice, b.id));
        expect(cost.details).toMatchObject({ limit: 'maxCostPerSessionUsd', max: 1 });
        expect(cost.details.current).toBeCloseTo(1.2, 9);

        await hub.delete(alice, b.id);
        const c = await hub.create(alice);
        const daily = await thrown(hub.admitTurn(alice, c.id));
        expect(daily.details).toMatchObject({ limit: 'maxCostPerOwnerPerDayUsd', max: 1.5 });
        expect(daily.details.current).toBeCloseTo(2, 9);
        clock.advance(DAY);
        expect((await hub.admitTurn(alice, c.id)).maxBudgetUsd).toBe(1);
        // An admin may lift a session's limit; a user may not.
        expect(
          (await thrown(hub.setOverrides(alice, a.id, { limits: { maxTurnsPerSession: 9 } }))).code,
        ).toBe('FORBIDDEN');
        await hub.setOverrides(acmeAdmin, a.id, { limits: { maxTurnsPerSession: 9 } });
        await hub.admitTurn(alice, a.id);
      });
    });

    describe('forks and lineage', () => {
      test('a fork records its origin and starts from the parent figures without adding to them', async () => {
        const { hub } = await setup();
        const parent = await hub.create(alice, { title: 'Plan', tags: ['x'] });
        const one = await appendTurn(hub, alice, parent.id, {
          prompt: 'first',
          cumulativeCostUsd: 0.1,
        });
        await appendTurn(hub, alice, parent.id, {
          prompt: 'second',
          parentUuid: one.assistantUuid,
          cumulativeCostUsd: 0.3,
        });
        const before = await hub.get(alice, parent.id);
        const whole = await hub.fork(alice, parent.id);
        expect(whole).toMatchObject({
          owner: 'alice',
          title: 'Plan (fork)',
          tags: ['x'],
          forkedFrom: { sessionId: parent.id, messageUuid: null },
          status: 'active',
        });
        expect(whole.usage.costUsd).toBeCloseTo(0.3, 9);
        expect(whole.usage.turns).toBe(before.usage.turns);
        expect((await hub.get(alice, parent.id)).usage).toEqual(before.usage);
        const stats = await hub.stats(alice);
        expect(stats.usage.total.costUsd).toBeCloseTo(0.3, 9);

        const cut = await hub.fork(alice, parent.id, {
          atMessageUuid: one.assistantUuid,
          title: 'B',
        });
        expect(cut.forkedFrom).toEqual({ sessionId: parent.id, messageUuid: one.assistantUuid });
        const messages = await hub
          .transcriptStore(alice)
          .load({ projectKey: 'p', sessionId: cut.id });
        expect(JSON.stringify(messages)).toContain('first');
        expect(JSON.stringify(messages)).not.toContain('second');

        expect(
          (await thrown(hub.fork(alice, parent.id, { atMessageUuid: randomUUID() }))).code,
        ).toBe('INVALID_INPUT');
        const empty = await hub.create(alice);
        expect((await thrown(hub.fork(alice, empty.id))).code).toBe('INVALID_INPUT');
      });

      test('lineage lists ancestors and descendants the caller may see', async () => {
        const { hub } = await setup();
        const root = await hub.create(alice);
        await appendTurn(hub, alice, root.id, { cumulativeCostUsd: 0.1 });
        const child = await hub.fork(alice, root.id);
        const grandchild = await hub.fork(alice, child.id);
        const sibling = await hub.fork(acmeAdmin, root.id);
        const lineage = await hub.lineage(alice, grandchild.id);
        expect(lineage.ancestors.map((s) => s.id)).toEqual([child.id, root.id]);
        expect(lineage.descendants).toEqual([]);
        const down = await hub.lineage(alice, root.id);
        expect(down.descendants.map((d) => [d.depth, d.session.id]).sort()).toEqual(
          [
            [1, child.id],
            [1, sibling.id],
            [2, grandchild.id],
          ].sort(),
        );
        expect(sibling.owner).toBe('alice');
        await hub.delete(alice, child.id);
        expect((await hub.lineage(alice, grandchild.id)).ancestors).toEqual([]);
      });

      test('a fork counts against the owner session limit', async () => {
        const { hub } = await setup({ limits: { maxSessionsPerOwner: 1 } });
        const root = await hub.create(alice);
        await appendTurn(hub, alice, root.id, {});
        expect((await thrown(hub.fork(alice, root.id))).code).toBe('LIMIT_EXCEEDED');
        expect((await hub.list(alice)).sessions).toHaveLength(1);
      });
    });

    describe('leases', () => {
      test('one holder at a time per session, with a fence that grows, free again after the TTL', async () => {
        const { hub, clock, backend } = await setup();
        const { id } = await hub.create(alice);
        const lease = await hub.acquireLease(alice, id, { ttlMs: 1000, holder: 'worker-1' });
        const busy = await thrown(hub.acquireLease(alice, id, { ttlMs: 1000, holder: 'worker-2' }));
        expect(busy.code).toBe('SESSION_BUSY');
        expect(busy.details).toMatchObject({ holder: 'worker-1', until: START + 1000 });
        expect(await backend.leases.validate(lease.resource, lease.fence)).toBe(true);
        clock.advance(1000);
        const next = await hub.acquireLease(acmeAdmin, id, { ttlMs: 1000, holder: 'worker-2' });
        expect(next.fence).toBeGreaterThan(lease.fence);
        expect(await backend.leases.validate(lease.resource, lease.fence)).toBe(false);
      });
    });

    if (options.shared) {
      const shared = options.shared;
      describe('several hubs on one backend', () => {
        async function hubs(count: number, hubOptions: Omit<HubOptions, 'backend' | 'clock'> = {}) {
          const clock = new ManualClock(START);
          const storage = await shared();
          const list: SessionHub[] = [];
          for (let i = 0; i < count; i++) {
            list.push(createHub({ ...hubOptions, backend: await storage.open(clock), clock }));
          }
          opened.push(async () => {
            for (const hub of list) await hub.close();
            await storage.cleanup();
          });
          return { clock, hubs: list };
        }

        test('racing sweeps expire and purge every session exactly once', async () => {
          const { clock, hubs: all } = await hubs(4, {
            expiry: { idleTtlMs: HOUR, retentionMs: 0 },
          });
          const [first] = all as [SessionHub];
          const ids: string[] = [];
          for (let i = 0; i < 60; i++) ids.push((await first.create(i % 2 ? alice : bob)).id);
          clock.advance(HOUR);
          const free = await Promise.all(
            all.map((hub) => hub.sweep({ batchSize: 7, exclusive: false })),
          );
          // Past retention too, a session may be deleted without being marked expired first.
          expect(free.reduce((n, r) => n + r.expired, 0)).toBeLessThanOrEqual(60);
          expect(free.reduce((n, r) => n + r.purged, 0)).toBe(60);
          expect((await first.stats(acmeAdmin)).sessions.total).toBe(0);

          for (let i = 0; i < 30; i++) await first.create(alice);
          clock.advance(HOUR);
          const leased = await Promise.all(all.map((hub) => hub.sweep({ batchSize: 5 })));
          expect(leased.filter((r) => r.ran).length).toBeGreaterThanOrEqual(1);
          expect(leased.reduce((n, r) => n + r.expired, 0)).toBeLessThanOrEqual(30);
          expect(leased.reduce((n, r) => n + r.purged, 0)).toBe(30);
          expect((await first.stats(acmeAdmin)).sessions.total).toBe(0);
        });

        test('background sweeps run once per interval across every hub', async () => {
          const clock = new ManualClock(START);
          const storage = await shared();
          const ticks: Array<() => void> = [];
          const waiting: Array<((result: SweepResult) => void) | null> = [];
          const all: SessionHub[] = [];
          for (let i = 0; i < 3; i++) {
            all.push(
              createHub({
                backend: await storage.open(clock),
                clock,
                sweep: { intervalMs: HOUR },
                timers: {
                  setInterval: (callback: () => void) => ticks.push(callback),
                  clearInterval: () => {},
                },
                onSweep: (result) => waiting[i]?.(result),
              }),
            );
          }
          opened.push(async () => {
            for (const hub of all) await hub.close();
            await storage.cleanup();
          });
          // Fires hub i's timer and resolves with what its background sweep did.
          const tick = (i: number) =>
            new Promise<boolean>((resolve) => {
              waiting[i] = (result) => resolve(result.ran);
              ticks[i]?.();
            });
          expect(await tick(0)).toBe(true);
          expect(await tick(1)).toBe(false);
          expect(await tick(2)).toBe(false);
          clock.advance(HOUR / 2);
          expect(await tick(1)).toBe(false);
          clock.advance(HOUR / 2);
          // The next interval: whichever hub ticks first sweeps, and only it.
          expect(await tick(2)).toBe(true);
          expect(await tick(0)).toBe(false);
          // A sweep asked for by hand is not held back by the interval once the lease is free.
          clock.advance(HOUR);
          expect((await all[1]?.sweep())?.ran).toBe(true);
          expect((await all[1]?.sweep())?.ran).toBe(true);
        });

        test('racing for a session lease: exactly one hub wins', async () => {
          const { hubs: all } = await hubs(4);
          const { id } = await (all[0] as SessionHub).create(alice);
          const results = await Promise.allSettled(
            all.flatMap((hub) => [1, 2].map(() => hub.acquireLease(alice, id, { ttlMs: 10_000 }))),
          );
          expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
          for (const r of results) {
            if (r.status === 'rejected')
              expect((r.reason as SessionHubError).code).toBe('SESSION_BUSY');
          }
        });

        test('racing creations never pass the per-owner session limit', async () => {
          const { hubs: all } = await hubs(3, { limits: { maxSessionsPerOwner: 4 } });
          const results = await Promise.allSettled(
            all.flatMap((hub) => [1, 2, 3].map(() => hub.create(alice))),
          );
          expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(4);
          expect((await (all[0] as SessionHub).list(alice)).sessions).toHaveLength(4);
        });

        test('racing updates lose nothing', async () => {
          const { hubs: all } = await hubs(3);
          const { id } = await (all[0] as SessionHub).create(alice);
          await Promise.all(
            all.flatMap((hub, h) => [0, 1, 2, 3].map((t) => hub.tag(alice, id, `h${h}t${t}`))),
          );
          const record: SessionRecord = await (all[1] as SessionHub).get(alice, id);
          expect(record.tags).toHaveLength(12);
          expect(record.version).toBe(13);
        });

        test('racing creations of one id: exactly one wins', async () => {
          const { hubs: all } = await hubs(3);
          const id = randomUUID();
          const results = await Promise.allSettled(all.map((hub) => hub.create(alice, { id })));
          expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        });
      });
    }
  });
}
