/**
 * The runner with the real Agent SDK (its bundled CLI against the mock Anthropic API) on a real
 * SQLite file: turns through hub.start / hub.send / hub.fork, warm and cold, budgets, retries,
 * interrupts, a killed CLI, concurrent sends, caller options and a store outage repaired.
 */

import { spawn } from 'node:child_process';
import path from 'node:path';
import type { SpawnedProcess, SpawnOptions } from '@anthropic-ai/claude-agent-sdk';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { openBackend } from '../../src/backends/open.js';
import type { Identity } from '../../src/core/identity.js';
import { createHub, type HubOptions, type SessionHub } from '../../src/hub/hub.js';
import type { TurnOutcome } from '../../src/runner/turn.js';
import { type MockAnthropic, startMockAnthropic } from '../../src/testing/index.js';
import { conversation, drain, heldReply, mockAgent, rejection } from '../helpers/runner.js';
import { TempDirs } from '../helpers/sdk.js';

const TIMEOUT = 90_000;
const alice: Identity = { tenant: 'acme', owner: 'alice' };
const bob: Identity = { tenant: 'acme', owner: 'bob' };

let mock: MockAnthropic;
const dirs = new TempDirs();
const open: Array<{ hub: SessionHub; backend: Backend }> = [];

beforeAll(async () => {
  mock = await startMockAnthropic();
});
afterEach(async () => {
  for (const { hub, backend } of open.splice(0)) {
    await hub.close();
    await backend.close();
  }
  mock.reset();
});
afterAll(async () => {
  await mock.close();
  await dirs.cleanup();
});

/** A hub on a fresh SQLite file whose runner talks to the mock; no real waiting between retries. */
async function makeHub(
  options: Omit<Partial<HubOptions>, 'runner'> & {
    runner?: Partial<NonNullable<HubOptions['runner']>>;
  } = {},
): Promise<{ hub: SessionHub; backend: Backend; sleeps: number[]; dataDir: string }> {
  const dataDir = await dirs.make('runner');
  const backend = await openBackend(`sqlite://${path.join(dataDir, 'hub.db')}`);
  const sleeps: number[] = [];
  const { runner, ...rest } = options;
  const hub = createHub({
    backend,
    ...rest,
    runner: {
      dataDir,
      agent: mockAgent(mock),
      // Retries are recorded, not waited for; waiting for a busy session yields to I/O only.
      sleep: async (ms) => {
        sleeps.push(ms);
        await new Promise((resolve) => setImmediate(resolve));
      },
      random: () => 0.5,
      ...runner,
    },
  });
  open.push({ hub, backend });
  return { hub, backend, sleeps, dataDir };
}

describe('turns', () => {
  test(
    'warm and cold turns give the same transcript and the same usage; warm ones skip the process start',
    async () => {
      const prompts = ['Plan a day in Lisbon', 'Add a museum', 'Where to eat?'];
      const runs: Array<{ texts: string[]; usage: unknown; warm: boolean[]; cost: number }> = [];
      for (const warm of [true, false]) {
        const { hub, backend } = await makeHub({ runner: warm ? {} : { warm: false } });
        const first = await hub.start({ identity: alice, prompt: prompts[0] as string }).done();
        expect(first.status).toBe('completed');
        const flags = [first.warm];
        let last = first;
        for (const prompt of prompts.slice(1)) {
          last = await hub.send(first.sessionId, prompt, { identity: alice }).done();
          expect(last.status).toBe('completed');
          flags.push(last.warm);
        }
        // The model saw the whole history on the last turn, warm or cold.
        const request = mock.requests.findLast((r) => r.sessionId === first.sessionId);
        expect(request?.body.messages.length).toBeGreaterThanOrEqual(5);
        runs.push({
          texts: await conversation(backend, first.sessionId),
          usage: { turns: last.session.usage.turns, costUsd: last.session.usage.costUsd },
          warm: flags,
          cost: last.result?.total_cost_usd ?? -1,
        });
        expect(hub.warmSessions).toBe(warm ? 1 : 0);
      }
      const [warm, cold] = runs;
      expect(warm?.warm).toEqual([false, true, true]);
      expect(cold?.warm).toEqual([false, false, false]);
      expect(warm?.texts).toEqual(cold?.texts);
      expect(warm?.texts).toHaveLength(6);
      // The record's cost is the SDK's own cumulative figure for the session, either way. (The
      // two runs differ in cost: the mock's simulated prompt cache is warm for the second.)
      for (const run of runs) {
        expect(run.usage).toMatchObject({ turns: 3 });
        expect((run.usage as { costUsd: number }).costUsd).toBeCloseTo(run.cost, 9);
      }
    },
    TIMEOUT,
  );

  test(
    'a warm session written by another hub in between falls back to a cold resume',
    async () => {
      const { hub, backend } = await makeHub();
      // Another host: its own data directory (so its own CLAUDE_CONFIG_DIR), the same backend.
      const other = createHub({
        backend,
        runner: { dataDir: await dirs.make('other'), warm: false, agent: mockAgent(mock) },
      });
      try {
        const first = await hub.start({ identity: alice, prompt: 'One' }).done();
        expect(hub.warmSessions).toBe(1);
        const elsewhere = await other.send(first.sessionId, 'Two', { identity: alice }).done();
        expect(elsewhere.status).toBe('completed');
        const third = await hub.send(first.sessionId, 'Three', { identity: alice }).done();
        expect(third.warm).toBe(false);
        expect(third.session.usage.turns).toBe(3);
        expect(await conversation(backend, first.sessionId)).toEqual([
          'user: One',
          'assistant: Mock reply to: One',
          'user: Two',
          'assistant: Mock reply to: Two',
          'user: Three',
          'assistant: Mock reply to: Three',
        ]);
      } finally {
        await other.close();
      }
    },
    TIMEOUT,
  );

  test(
    'hub.fork with a prompt runs a turn on the new branch; the parent is unchanged',
    async () => {
      const { hub, backend } = await makeHub();
      const first = await hub.start({ identity: alice, prompt: 'Porto or Lisbon?' }).done();
      const fork = hub.fork(alice, first.sessionId, { prompt: 'Porto then', title: 'porto' });
      const outcome = await fork.done();
      expect(outcome.status).toBe('completed');
      expect(fork.sessionId).toBe(outcome.sessionId);
      expect(outcome.session.forkedFrom?.sessionId).toBe(first.sessionId);
      expect(outcome.session.title).toBe('porto');
      expect(outcome.session.usage.turns).toBe(2);
      expect(await conversation(backend, outcome.sessionId)).toEqual([
        'user: Porto or Lisbon?',
        'assistant: Mock reply to: Porto or Lisbon?',
        'user: Porto then',
        'assistant: Mock reply to: Porto then',
      ]);
      const parent = await hub.get(alice, first.sessionId);
      expect(parent.usage).toEqual(first.session.usage);
      expect((await hub.lineage(alice, first.sessionId)).descendants).toHaveLength(1);
    },
    TIMEOUT,
  );
});

describe('budgets and limits', () => {
  test(
    'the remaining budget stops a turn inside the SDK; at the limit no process starts',
    async () => {
      const { hub } = await makeHub();
      const session = await hub.create(
        { tenant: 'acme', admin: true },
        {
          owner: 'alice',
          limits: { maxCostPerSessionUsd: 0.053 },
        },
      );
      const first = await hub.send(session.id, 'First', { identity: alice }).done();
      expect(first.status).toBe('completed');
      const spent = first.session.usage.costUsd;
      expect(spent).toBeGreaterThan(0.05);
      expect(spent).toBeLessThan(0.053);

      // The second turn may spend what is left (about a tenth of a cent) and costs more.
      const second = await hub.send(session.id, 'Second', { identity: alice }).done();
      expect(second.status).toBe('stopped');
      expect(second.error?.kind).toBe('budget');
      expect(second.result?.subtype).toBe('error_max_budget_usd');
      expect(second.session.usage.costUsd).toBeGreaterThan(0.053);

      const before = mock.requests.length;
      const refused = await rejection(hub.send(session.id, 'Third', { identity: alice }).done());
      expect(refused).toMatchObject({
        code: 'LIMIT_EXCEEDED',
        details: { limit: 'maxCostPerSessionUsd', max: 0.053 },
      });
      expect(mock.requests.length).toBe(before);
    },
    TIMEOUT,
  );

  test('caller options outside the allow-list, and bad prompts, are refused before any process', async () => {
    const { hub } = await makeHub();
    const session = await hub.create(alice, {});
    expect(
      await rejection(
        hub
          .send(session.id, 'x', {
            identity: alice,
            options: { permissionMode: 'bypassPermissions' },
          })
          .done(),
      ),
    ).toMatchObject({
      code: 'FORBIDDEN',
      details: { option: 'permissionMode', allowed: ['model', 'maxTurns'] },
    });
    expect(
      await rejection(
        hub.send(session.id, 'x', { identity: alice, options: { cwd: '/' } as never }).done(),
      ),
    ).toMatchObject({ code: 'INVALID_OPTION', details: { option: 'cwd' } });
    expect(
      await rejection(
        hub.send(session.id, 'x', { identity: alice, options: { maxTurns: 0 } }).done(),
      ),
    ).toMatchObject({ code: 'INVALID_OPTION' });
    expect(await rejection(hub.send(session.id, '  ', { identity: alice }).done())).toMatchObject({
      code: 'INVALID_INPUT',
    });
    expect(await rejection(hub.send(session.id, 'x', { identity: bob }).done())).toMatchObject({
      code: 'SESSION_NOT_FOUND',
    });
    expect(mock.requests).toHaveLength(0);
  });
});

describe('failures', () => {
  test(
    'a 529 the CLI gives up on is retried with backoff; a 400 is not',
    async () => {
      const { hub, sleeps } = await makeHub({ runner: { retry: { baseDelayMs: 1000 } } });
      mock.enqueue({ fail: { status: 529, shouldRetry: false } }, 'Recovered');
      const turn = hub.start({ identity: alice, prompt: 'Try hard' });
      const events = await drain(turn);
      const outcome = await turn.done();
      expect(outcome).toMatchObject({ status: 'completed', attempts: 2, text: 'Recovered' });
      const retries = events.filter((e) => e.type === 'sessionhub_retry');
      expect(retries).toMatchObject([{ attempt: 1, reason: 'overloaded', delayMs: 500 }]);
      expect(sleeps).toEqual([500]);

      // The CLI itself tries a 400 more than once; every try gets one.
      for (let i = 0; i < 12; i++) mock.enqueue({ fail: { status: 400, shouldRetry: false } });
      const bad = await hub.send(outcome.sessionId, 'Again', { identity: alice }).done();
      expect(bad).toMatchObject({ status: 'failed', attempts: 1, error: { kind: 'client_error' } });
      expect(sleeps).toEqual([500]);
      // The failure is on the session; it stays resumable, and a good turn makes it active.
      expect(bad.session.status).toBe('failed');
      expect((await hub.list(alice, { status: ['failed'] })).sessions.map((s) => s.id)).toEqual([
        outcome.sessionId,
      ]);
      mock.reset();
      const after = await hub.send(outcome.sessionId, 'Once more', { identity: alice }).done();
      expect(after.status).toBe('completed');
      expect(after.session.status).toBe('active');
    },
    TIMEOUT,
  );

  test(
    'interrupt stops a running turn; the session continues afterwards',
    async () => {
      const { hub } = await makeHub();
      const held = heldReply('never sent');
      mock.enqueue(held.step);
      const turn = hub.start({ identity: alice, prompt: 'Write a long essay' });
      await held.reached;
      await turn.interrupt();
      const outcome = await turn.done();
      held.release();
      expect(outcome.status).toBe('interrupted');
      const next = await hub
        .send(outcome.sessionId, 'Short answer please', { identity: alice })
        .done();
      expect(next.status).toBe('completed');
    },
    TIMEOUT,
  );

  test(
    'a CLI killed mid-turn fails the turn, and the session resumes from the store',
    async () => {
      let child: SpawnedProcess | null = null;
      const { hub, backend } = await makeHub({
        runner: {
          warm: false,
          sdkOptions: {
            spawnClaudeCodeProcess: (options: SpawnOptions) => {
              child = spawn(options.command, options.args, {
                cwd: options.cwd,
                env: options.env,
                stdio: ['pipe', 'pipe', 'pipe'],
              });
              return child;
            },
          },
        },
      });
      const first = await hub.start({ identity: alice, prompt: 'Remember 42' }).done();
      const held = heldReply('too late');
      mock.enqueue(held.step);
      const turn = hub.send(first.sessionId, 'What number?', { identity: alice });
      await held.reached;
      (child as SpawnedProcess | null)?.kill('SIGKILL');
      const outcome = await turn.done();
      held.release();
      expect(outcome.status).toBe('failed');
      expect(outcome.session.status).toBe('failed');
      expect(outcome.session.usage.turns).toBe(1);
      const again = await hub
        .send(first.sessionId, 'What number did I say?', { identity: alice })
        .done();
      expect(again.status).toBe('completed');
      const texts = await conversation(backend, first.sessionId);
      expect(texts.slice(0, 2)).toEqual([
        'user: Remember 42',
        'assistant: Mock reply to: Remember 42',
      ]);
      expect(texts.at(-1)).toBe('assistant: Mock reply to: What number did I say?');
      expect(again.session.status).toBe('active');
    },
    TIMEOUT,
  );

  test(
    'a store outage during a turn is repaired from the local transcript afterwards',
    async () => {
      const { hub, backend } = await makeHub({ runner: { warm: false } });
      const first = await hub.start({ identity: alice, prompt: 'Before the outage' }).done();
      // The backend refuses appends until the SDK has tried a batch 3 times and dropped it.
      const append = backend.store.append.bind(backend.store);
      let failures = 0;
      backend.store.append = async (key, entries) => {
        if (failures < 3) {
          failures += 1;
          throw new Error('simulated outage: connection refused');
        }
        return append(key, entries);
      };
      const turn = hub.send(first.sessionId, 'During the outage', { identity: alice });
      const events = await drain(turn);
      const outcome = await turn.done();
      expect(failures).toBe(3);
      expect(events.some((e) => e.type === 'system' && e.subtype === 'mirror_error')).toBe(true);
      const repair = events.find((e) => e.type === 'sessionhub_mirror_repair');
      expect(repair).toMatchObject({ repaired: [{ subpath: null }] });
      const copied = (repair as { repaired: Array<{ copied: number }> }).repaired[0]?.copied;
      expect(copied).toBeGreaterThan(1);
      expect(outcome.status).toBe('completed');
      expect(await conversation(backend, first.sessionId)).toEqual([
        'user: Before the outage',
        'assistant: Mock reply to: Before the outage',
        'user: During the outage',
        'assistant: Mock reply to: During the outage',
      ]);
      expect(outcome.session.usage.turns).toBe(2);
    },
    TIMEOUT,
  );
});

describe('one turn at a time', () => {
  test(
    'a second send while a turn runs gets SESSION_BUSY, or waits when asked to',
    async () => {
      const { hub } = await makeHub();
      const first = await hub.start({ identity: alice, prompt: 'Hello' }).done();
      const held = heldReply('Slow answer');
      mock.enqueue(held.step);
      const running = hub.send(first.sessionId, 'Slow question', { identity: alice });
      await held.reached;
      const busy = await rejection(hub.send(first.sessionId, 'Me too', { identity: alice }).done());
      expect(busy).toMatchObject({ code: 'SESSION_BUSY', details: { sessionId: first.sessionId } });
      const waiting = hub.send(first.sessionId, 'After you', { identity: alice, waitMs: 60_000 });
      await new Promise((resolve) => setTimeout(resolve, 0));
      held.release();
      expect((await running.done()).status).toBe('completed');
      const after = await waiting.done();
      expect(after.status).toBe('completed');
      expect(after.session.usage.turns).toBe(3);
    },
    TIMEOUT,
  );
});

describe('many sessions', () => {
  test(
    '20 sessions take their first and follow-up turns at once, all completed, none mixed up',
    async () => {
      const { hub, backend } = await makeHub({ runner: { warm: { maxSessions: 20 } } });
      const topics = Array.from({ length: 20 }, (_, i) => `topic ${i}`);
      const firsts = await Promise.all(
        topics.map((topic) => hub.start({ identity: alice, prompt: `About ${topic}` }).done()),
      );
      expect(firsts.map((o) => o.status)).toEqual(topics.map(() => 'completed'));
      expect(new Set(firsts.map((o) => o.sessionId)).size).toBe(20);
      expect(hub.warmSessions).toBe(20);
      const follows = await Promise.all(
        firsts.map((first, i) =>
          hub.send(first.sessionId, `More on ${topics[i]}`, { identity: alice }).done(),
        ),
      );
      expect(follows.map((o) => [o.status, o.warm, o.session.usage.turns])).toEqual(
        topics.map(() => ['completed', true, 2]),
      );
      for (const [i, first] of firsts.entries()) {
        expect(await conversation(backend, first.sessionId)).toEqual([
          `user: About ${topics[i]}`,
          `assistant: Mock reply to: About ${topics[i]}`,
          `user: More on ${topics[i]}`,
          `assistant: Mock reply to: More on ${topics[i]}`,
        ]);
      }
    },
    TIMEOUT * 2,
  );
});

describe('hooks', () => {
  test(
    'hooks hear of starts, forks, turns with their usage, expiry and deletes; one that throws fails nothing',
    async () => {
      const events: string[] = [];
      const errors: string[] = [];
      let throwOnce = true;
      let first: TurnOutcome | undefined;
      let fork: TurnOutcome | undefined;
      const { hub } = await makeHub({
        hooks: {
          onSessionStart: ({ session, reason }) => {
            events.push(`start ${reason} ${session.forkedFrom ? 'fork' : 'root'}`);
          },
          onTurnEnd: ({ outcome }) => {
            events.push(`turn ${outcome.status} turns=${outcome.session.usage.turns}`);
            if (throwOnce) {
              throwOnce = false;
              throw new Error('hook broke');
            }
          },
          onExpiry: ({ session, reason }) => {
            events.push(`expiry ${reason} ${session.id === fork?.sessionId ? 'fork' : '?'}`);
          },
          onSessionEnd: ({ session, reason }) => {
            events.push(`end ${reason} ${session.id === first?.sessionId ? 'root' : '?'}`);
          },
          onError: (error, hook) => {
            errors.push(`${hook}: ${(error as Error).message}`);
          },
        },
      });
      first = await hub.start({ identity: alice, prompt: 'Hi' }).done();
      expect(first.status).toBe('completed');
      fork = await hub.fork(alice, first.sessionId, { prompt: 'Branch' }).done();
      await hub.expire(alice, fork.sessionId);
      await hub.delete(alice, first.sessionId);
      expect(events).toEqual([
        'start created root',
        'turn completed turns=1',
        'start forked fork',
        'turn completed turns=2',
        'expiry expired fork',
        'end deleted root',
      ]);
      expect(errors).toEqual(['onTurnEnd: hook broke']);
    },
    TIMEOUT,
  );
});
