/**
 * The hub with the real Agent SDK (its bundled CLI against the mock API), on every backend: a
 * registered session runs turns through the tenant's store, from two "hosts"; usage and cost are
 * folded from what the CLI appended; a hub fork resumes and is charged only for its own turn.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Identity } from '../../src/core/identity.js';
import { createHub } from '../../src/hub/hub.js';
import { type MockAnthropic, startMockAnthropic } from '../../src/testing/mock-anthropic/index.js';
import { backendCases } from '../helpers/backends.js';
import { runTurn, TempDirs } from '../helpers/sdk.js';

const alice: Identity = { tenant: 'acme', owner: 'alice' };
const bob: Identity = { tenant: 'acme', owner: 'bob' };

let mock: MockAnthropic;
const dirs = new TempDirs();

beforeAll(async () => {
  mock = await startMockAnthropic();
});

afterAll(async () => {
  await mock.close();
  await dirs.cleanup();
});

describe.each(backendCases())('hub with the SDK on $name', (backendCase) => {
  test('turns through the tenant store fold usage into the record; a fork is charged only for its own turns', async () => {
    const { backend, cleanup } = await backendCase.open();
    // The system clock, which the backend (opened without one) charges daily usage by as well.
    const hub = createHub({ backend });
    try {
      const session = await hub.create(alice, { title: 'Lisbon' });
      const sessionStore = hub.transcriptStore(alice);
      const first = await runTurn({
        mock,
        prompt: 'Plan three days in Lisbon',
        configDir: await dirs.make('host-a'),
        cwd: await dirs.make('cwd-a'),
        options: { sessionId: session.id, sessionStore },
      });
      expect(first.sessionId).toBe(session.id);
      // Another host, another working directory: the tenant store finds the transcript anyway.
      const second = await runTurn({
        mock,
        prompt: 'Make day two about food',
        configDir: await dirs.make('host-b'),
        cwd: await dirs.make('cwd-b'),
        options: { resume: session.id, sessionStore },
      });
      const afterTwo = await hub.get(alice, session.id);
      expect(afterTwo.usage.turns).toBe(2);
      expect(afterTwo.usage.costUsd).toBeGreaterThan(0);
      expect(afterTwo.usage.costUsd).toBeCloseTo(second.result.total_cost_usd, 9);
      expect(afterTwo.usage.tokens.outputTokens).toBeGreaterThan(0);
      expect(afterTwo.usage.pendingTokens.outputTokens).toBe(0);

      // Bob cannot resume Alice's session through his own store: it does not exist for him.
      const bobStore = hub.transcriptStore(bob);
      expect(await bobStore.load({ projectKey: 'x', sessionId: session.id })).toBeNull();

      const fork = await hub.fork(alice, session.id);
      expect(fork.usage.costUsd).toBeCloseTo(afterTwo.usage.costUsd, 9);
      const onFork = await runTurn({
        mock,
        prompt: 'Now plan Porto instead',
        configDir: await dirs.make('host-c'),
        cwd: await dirs.make('cwd-c'),
        options: { resume: fork.id, sessionStore },
      });
      const forkAfter = await hub.get(alice, fork.id);
      const parentAfter = await hub.get(alice, session.id);
      expect(parentAfter.usage).toEqual(afterTwo.usage);
      expect(forkAfter.usage.turns).toBe(3);
      // The helper's fork starts a new SDK counter: its result reports the fork's turn alone.
      expect(forkAfter.usage.costUsd).toBeCloseTo(
        afterTwo.usage.costUsd + onFork.result.total_cost_usd,
        9,
      );
      const stats = await hub.stats(alice);
      expect(stats.usage.total.turns).toBe(3);
      expect(stats.usage.total.costUsd).toBeCloseTo(
        second.result.total_cost_usd + onFork.result.total_cost_usd,
        9,
      );
      expect(stats.sessions.byStatus.active).toBe(2);
    } finally {
      await hub.close();
      await backend.close();
      await cleanup();
    }
  }, 120_000);
});
