/**
 * The runner on the multi-host backends: two hubs, each with its own data directory (so its own
 * CLAUDE_CONFIG_DIR, as two hosts would have), on one PostgreSQL schema or one Redis prefix.
 * A session started on one continues on the other, one turn at a time across both, and a warm
 * process that the other host overtook is not reused.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { systemClock } from '../../src/core/clock.js';
import type { Identity } from '../../src/core/identity.js';
import { createHub, type SessionHub } from '../../src/hub/hub.js';
import { type MockAnthropic, startMockAnthropic } from '../../src/testing/index.js';
import {
  freshPostgresUrl,
  freshRedisUrl,
  postgresAvailable,
  redisAvailable,
  sharedStorage,
} from '../helpers/backends.js';
import { conversation, heldReply, mockAgent, rejection } from '../helpers/runner.js';
import { TempDirs } from '../helpers/sdk.js';

const TIMEOUT = 90_000;
const alice: Identity = { tenant: 'acme', owner: 'alice' };

let mock: MockAnthropic;
const dirs = new TempDirs();
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  mock = await startMockAnthropic();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  mock.reset();
});
afterAll(async () => {
  await mock.close();
  await dirs.cleanup();
});

const cases = [
  { name: 'postgres', available: postgresAvailable, makeUrl: freshPostgresUrl },
  { name: 'redis', available: redisAvailable, makeUrl: freshRedisUrl },
] as const;

/** Two hubs ("hosts") on one storage, each with a warm pool of its own. */
async function twoHosts(makeUrl: () => Promise<{ url: string; drop(): Promise<void> }>) {
  const storage = await sharedStorage(makeUrl);
  const hubs: SessionHub[] = [];
  const backends: Backend[] = [];
  for (const name of ['host-a', 'host-b']) {
    // The lease clock must be real time: a turn's lease expires in real time on the server.
    const backend = await storage.open(systemClock);
    backends.push(backend);
    hubs.push(
      createHub({
        backend,
        runner: { dataDir: await dirs.make(name), agent: mockAgent(mock), random: () => 0.5 },
      }),
    );
  }
  cleanups.push(async () => {
    for (const hub of hubs) await hub.close();
    await storage.close();
  });
  const [a, b] = hubs as [SessionHub, SessionHub];
  return { a, b, backend: backends[0] as Backend };
}

for (const { name, available, makeUrl } of cases) {
  describe.skipIf(!available)(`runner on ${name}`, () => {
    test(
      'a session moves between hosts: warm on the host that has it, cold elsewhere, one history',
      async () => {
        const { a, b, backend } = await twoHosts(makeUrl);
        const first = await a.start({ identity: alice, prompt: 'One' }).done();
        expect(first.status).toBe('completed');
        const second = await a.send(first.sessionId, 'Two', { identity: alice }).done();
        expect(second).toMatchObject({ status: 'completed', warm: true });
        const third = await b.send(first.sessionId, 'Three', { identity: alice }).done();
        expect(third).toMatchObject({ status: 'completed', warm: false });
        // Host A's warm process missed turn three: it must not answer turn four.
        const fourth = await a.send(first.sessionId, 'Four', { identity: alice }).done();
        expect(fourth).toMatchObject({ status: 'completed', warm: false });
        expect(fourth.session.usage.turns).toBe(4);
        const words = ['One', 'Two', 'Three', 'Four'];
        expect(await conversation(backend, first.sessionId)).toEqual(
          words.flatMap((w) => [`user: ${w}`, `assistant: Mock reply to: ${w}`]),
        );
        // The model saw the whole history on the last turn.
        const request = mock.requests.findLast((r) => r.sessionId === first.sessionId);
        expect(request?.body.messages.length).toBeGreaterThanOrEqual(7);
        // The fork runs on the other host from the shared transcript.
        const fork = await b.fork(alice, first.sessionId, { prompt: 'Five' }).done();
        expect(fork.session).toMatchObject({ forkedFrom: { sessionId: first.sessionId } });
        expect(await conversation(backend, fork.sessionId)).toEqual(
          [...words, 'Five'].flatMap((w) => [`user: ${w}`, `assistant: Mock reply to: ${w}`]),
        );
      },
      TIMEOUT,
    );

    test(
      'a send on one host while a turn runs on the other is refused as busy, then goes through',
      async () => {
        const { a, b } = await twoHosts(makeUrl);
        const first = await a.start({ identity: alice, prompt: 'Hello' }).done();
        const held = heldReply('Slow answer');
        mock.enqueue(held.step);
        const running = a.send(first.sessionId, 'Slow question', { identity: alice });
        await held.reached;
        expect(
          await rejection(b.send(first.sessionId, 'Me too', { identity: alice }).done()),
        ).toMatchObject({ code: 'SESSION_BUSY' });
        held.release();
        expect((await running.done()).status).toBe('completed');
        const after = await b.send(first.sessionId, 'Now me', { identity: alice }).done();
        expect(after).toMatchObject({ status: 'completed', warm: false });
        expect(after.session.usage.turns).toBe(3);
      },
      TIMEOUT,
    );

    test(
      'an interrupt sent through the other host stops the turn; only that turn',
      async () => {
        const { a, b } = await twoHosts(makeUrl);
        const first = await a.start({ identity: alice, prompt: 'Hello' }).done();
        expect(await b.interrupt(alice, first.sessionId)).toBe(false);
        const held = heldReply('never sent');
        mock.enqueue(held.step);
        const running = a.send(first.sessionId, 'Write a saga', { identity: alice });
        await held.reached;
        expect(await b.interrupt(alice, first.sessionId)).toBe(true);
        const outcome = await running.done();
        held.release();
        expect(outcome.status).toBe('interrupted');
        // The request was for that turn alone: the next one, on either host, runs to the end.
        const next = await a.send(first.sessionId, 'Short then', { identity: alice }).done();
        expect(next.status).toBe('completed');
        expect((await b.send(first.sessionId, 'Bye', { identity: alice }).done()).status).toBe(
          'completed',
        );
      },
      TIMEOUT,
    );

    test(
      'a failed turn marks the session failed on every host; the next good turn clears it',
      async () => {
        const { a, b } = await twoHosts(makeUrl);
        const first = await a.start({ identity: alice, prompt: 'Hello' }).done();
        // The CLI tries a 400 more than once; every try gets one.
        for (let i = 0; i < 12; i++) mock.enqueue({ fail: { status: 400, shouldRetry: false } });
        const bad = await a.send(first.sessionId, 'Broken', { identity: alice }).done();
        expect(bad).toMatchObject({ status: 'failed', session: { status: 'failed' } });
        expect((await b.get(alice, first.sessionId)).status).toBe('failed');
        mock.reset();
        const good = await b.send(first.sessionId, 'Fixed', { identity: alice }).done();
        expect(good).toMatchObject({ status: 'completed', session: { status: 'active' } });
      },
      TIMEOUT,
    );
  });
}
