/**
 * The built CLI end to end: `sessionhub serve` as a separate process, driven over real HTTP,
 * its event streams read by a real SSE parser; shutdown on SIGTERM; the operator commands.
 */
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { type MockAnthropic, startMockAnthropic } from '../../src/testing/index.js';
import { assertBuilt, run, type ServeProcess, serve, stopServices } from '../helpers/cli.js';
import { heldReply } from '../helpers/runner.js';
import { TempDirs } from '../helpers/sdk.js';
import { readSse } from '../helpers/sse.js';

const TIMEOUT = 120_000;
let mock: MockAnthropic;
const dirs = new TempDirs();
const running: ServeProcess[] = [];

beforeAll(async () => {
  assertBuilt();
  mock = await startMockAnthropic();
});
afterEach(async () => {
  await stopServices(running);
  mock.reset();
});
afterAll(async () => {
  await mock.close();
  await dirs.cleanup();
});

/** Flags for a service of its own: a fresh SQLite file and data directory, any free port. */
async function ownPlace(): Promise<{ dir: string; flags: string[] }> {
  const dir = await dirs.make('serve');
  return {
    dir,
    flags: ['--db', `sqlite:${path.join(dir, 'hub.db')}`, '--data-dir', path.join(dir, 'data')],
  };
}

/** The service pointed at this test's mock, so the test can hold a reply. */
const atTestMock = () => [
  '--anthropic-base-url',
  mock.url,
  '--anthropic-api-key',
  'mock-key',
  '--port',
  '0',
];
const quietEnv = { CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', SESSIONHUB_LOG_LEVEL: 'warn' };

function client(url: string, token: string) {
  return (route: string, init: { method?: string; body?: unknown; stream?: boolean } = {}) =>
    fetch(`${url}${route}`, {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      headers: {
        authorization: `Bearer ${token}`,
        ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(init.stream ? { accept: 'text/event-stream' } : {}),
      },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
}

async function keyFor(place: { flags: string[] }, owner = 'dev'): Promise<string> {
  const created = await run([
    'keys',
    'create',
    '--tenant',
    'default',
    '--owner',
    owner,
    '--json',
    ...place.flags.slice(0, 2),
  ]);
  expect(created.code).toBe(0);
  return JSON.parse(created.stdout).token;
}

describe('sessionhub serve', () => {
  test(
    'with --mock-model a new user gets a key, starts a session as a stream, and follows up',
    async () => {
      const place = await ownPlace();
      const service = await serve(
        [...place.flags, '--mock-model', '--bootstrap-key', '--port', '0'],
        { env: quietEnv, waitFor: /shk_\S+/ },
      );
      running.push(service);
      const printed = service.output();
      expect(printed).toMatch(/replies are SIMULATED/);
      const token = /(shk_\S+)/.exec(printed)?.[1] as string;
      const call = client(service.url, token);

      const started = await call('/v1/sessions', { body: { prompt: 'Hello there' }, stream: true });
      expect(started.status).toBe(201);
      expect(started.headers.get('content-type')).toMatch(/text\/event-stream/);
      const events = await readSse(started);
      const done = events.at(-1);
      expect(done).toMatchObject({
        event: 'done',
        data: { status: 'completed', text: 'Mock reply to: Hello there' },
      });
      expect(events.some((e) => e.event === 'assistant')).toBe(true);
      const id = (done?.data as { sessionId: string } | undefined)?.sessionId as string;

      const next = await call(`/v1/sessions/${id}/messages`, { body: { prompt: 'More' } });
      expect(next.status).toBe(200);
      expect(await next.json()).toMatchObject({
        status: 'completed',
        warm: true,
        session: { owner: 'dev', usage: { turns: 2 } },
      });
      const listed = (await (await call('/v1/sessions')).json()) as { sessions: [] };
      expect(listed.sessions.map((s: { id: string }) => s.id)).toEqual([id]);
      expect(await (await fetch(`${service.url}/metrics`)).text()).toMatch(
        /sessionhub_turns_total\{status="completed"\} 2/,
      );

      // A second start on the same data prints no new key: one already exists.
      service.child.kill('SIGTERM');
      expect(await service.exited).toBe(0);
      const again = await serve(
        [...place.flags, '--mock-model', '--bootstrap-key', '--port', '0'],
        {
          env: quietEnv,
        },
      );
      running.push(again);
      expect(again.output()).not.toMatch(/shk_/);
      const same = await client(again.url, token)(`/v1/sessions/${id}`);
      expect(((await same.json()) as { usage: { turns: number } }).usage.turns).toBe(2);
      expect(again.output()).toMatch(/API keys exist already/);
    },
    TIMEOUT,
  );

  test(
    'events stream as they happen, not when the turn is over',
    async () => {
      const place = await ownPlace();
      const token = await keyFor(place);
      const service = await serve([...place.flags, ...atTestMock()], { env: quietEnv });
      running.push(service);
      const held = heldReply('Finally');
      mock.enqueue(held.step);
      const seen: string[] = [];
      let initArrived: () => void = () => {};
      const init = new Promise<void>((resolve) => {
        initArrived = resolve;
      });
      const response = await client(service.url, token)('/v1/sessions', {
        body: { prompt: 'Take your time' },
        stream: true,
      });
      const reading = readSse(response, (event) => {
        seen.push(event.event);
        if (event.event === 'system') initArrived();
      });
      // The client has the session's init event while the model has not answered yet.
      await Promise.all([held.reached, init]);
      expect(seen).not.toContain('assistant');
      expect(seen).not.toContain('done');
      held.release();
      const events = await reading;
      expect(events.at(-1)?.data).toMatchObject({ status: 'completed', text: 'Finally' });
    },
    TIMEOUT,
  );

  test(
    'SIGTERM lets a running turn finish; past the grace period it is interrupted and resumable',
    async () => {
      const place = await ownPlace();
      const token = await keyFor(place);

      // A generous grace period: the turn finishes, then the process exits 0.
      const patient = await serve([...place.flags, ...atTestMock()], { env: quietEnv });
      running.push(patient);
      const call = client(patient.url, token);
      const first = (await (await call('/v1/sessions', { body: { prompt: 'One' } })).json()) as {
        sessionId: string;
      };
      const held = heldReply('Two done');
      mock.enqueue(held.step);
      const turn = call(`/v1/sessions/${first.sessionId}/messages`, { body: { prompt: 'Two' } });
      await held.reached;
      patient.child.kill('SIGTERM');
      // While draining: not ready, and new API requests are turned away with 503.
      let ready = await fetch(`${patient.url}/readyz`);
      while (ready.status === 200) ready = await fetch(`${patient.url}/readyz`);
      expect(ready.status).toBe(503);
      expect((await call('/v1/sessions')).status).toBe(503);
      held.release();
      expect(await (await turn).json()).toMatchObject({ status: 'completed', text: 'Two done' });
      expect(await patient.exited).toBe(0);

      // A short one: the turn is interrupted, and the session continues after a restart.
      const hasty = await serve([...place.flags, ...atTestMock(), '--shutdown-grace-ms', '300'], {
        env: quietEnv,
      });
      running.push(hasty);
      const stuck = heldReply('never');
      mock.enqueue(stuck.step);
      const cut = client(hasty.url, token)(`/v1/sessions/${first.sessionId}/messages`, {
        body: { prompt: 'Three' },
        stream: true,
      });
      await stuck.reached;
      hasty.child.kill('SIGTERM');
      const events = await readSse(await cut);
      expect(events.at(-1)?.data).toMatchObject({ status: 'interrupted' });
      expect(await hasty.exited).toBe(0);
      expect(hasty.output()).toMatch(/interrupted 1 turn/);
      stuck.release();

      const revived = await serve([...place.flags, ...atTestMock()], { env: quietEnv });
      running.push(revived);
      const after = await client(revived.url, token)(`/v1/sessions/${first.sessionId}/messages`, {
        body: { prompt: 'Four' },
      });
      expect(await after.json()).toMatchObject({
        status: 'completed',
        text: 'Mock reply to: Four',
      });
      const transcript = (await (
        await client(revived.url, token)(`/v1/sessions/${first.sessionId}/messages?limit=1000`)
      ).json()) as { entries: unknown[] };
      const prompts = JSON.stringify(transcript.entries);
      for (const word of ['One', 'Two', 'Four']) expect(prompts).toContain(word);
    },
    TIMEOUT,
  );
});

describe('operator commands', () => {
  test(
    'keys, sessions, sweep, stats and migrate: tables by default, JSON on request, exit codes that mean something',
    async () => {
      const place = await ownPlace();
      const db = place.flags.slice(0, 2);
      expect((await run(['migrate', ...db])).stdout).toMatch(/schema up to date/);
      const token = await keyFor(place, 'alice');
      const listed = await run(['keys', 'list', ...db]);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toMatch(/ID\s+NAME\s+TENANT\s+OWNER\s+ROLE/);
      expect(listed.stdout).toMatch(/alice\s+user/);
      // Never the secret: only the key's id.
      expect(listed.stdout).not.toContain(token.slice('shk_'.length + 13));
      const keys = JSON.parse((await run(['keys', 'list', '--json', ...db])).stdout);
      expect(keys).toHaveLength(1);
      expect(keys[0]).not.toHaveProperty('secretHash');

      const service = await serve([...place.flags, ...atTestMock()], { env: quietEnv });
      running.push(service);
      const made = (await (
        await client(service.url, token)('/v1/sessions', { body: { prompt: 'Hi', title: 'cli' } })
      ).json()) as { sessionId: string };
      const id = made.sessionId as string;
      service.child.kill('SIGTERM');
      await service.exited;

      const table = await run(['sessions', 'ls', ...db]);
      expect(table.code).toBe(0);
      expect(table.stdout).toMatch(new RegExp(`${id}\\s+alice\\s+active\\s+1`));
      const shown = JSON.parse((await run(['sessions', 'show', id, '--json', ...db])).stdout);
      expect(shown).toMatchObject({ id, owner: 'alice', title: 'cli', usage: { turns: 1 } });
      const exported = await run(['sessions', 'export', id, ...db]);
      const lines = exported.stdout.trim().split('\n');
      expect(lines.length).toBeGreaterThan(1);
      expect(lines.every((line) => typeof JSON.parse(line).type === 'string')).toBe(true);
      const forked = JSON.parse((await run(['sessions', 'fork', id, '--json', ...db])).stdout);
      expect(forked.forkedFrom.sessionId).toBe(id);
      const stats = JSON.parse((await run(['stats', '--json', ...db])).stdout);
      expect(stats.sessions.total).toBe(2);
      expect(JSON.parse((await run(['sweep', '--json', ...db])).stdout)).toMatchObject({
        ran: true,
        expired: 0,
      });
      expect((await run(['sessions', 'rm', forked.id, ...db])).code).toBe(0);

      const missing = await run(['sessions', 'show', forked.id, ...db]);
      expect(missing.code).toBe(3);
      expect(missing.stderr).toMatch(/SESSION_NOT_FOUND/);
      const badId = await run(['sessions', 'show', 'nope', ...db]);
      expect(badId.code).toBe(2);
      const revoke = await run(['keys', 'revoke', keys[0].id, '--json', ...db]);
      expect(JSON.parse(revoke.stdout).revokedAt).toEqual(expect.any(Number));
      expect((await run(['keys', 'revoke', 'zzzzzzzzzzzz', ...db])).code).toBe(3);
      expect((await run(['no-such-command'])).code).toBe(2);
      const unreachable = await run(['sessions', 'ls', '--db', 'postgres://127.0.0.1:1/x']);
      expect(unreachable.code).toBe(4);
    },
    TIMEOUT,
  );

  test('bad configuration fails fast with exit 2, naming each bad value and where it came from', async () => {
    const place = await ownPlace();
    const result = await run(['serve', ...place.flags, '--port', 'eighty', '--log-level', 'loud'], {
      env: { SESSIONHUB_WARM_SESSIONS: 'many' },
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--port eighty: must be a whole number/);
    expect(result.stderr).toMatch(/SESSIONHUB_WARM_SESSIONS=many: must be a whole number/);
    expect(result.stderr).toMatch(/--log-level \("loud"\): .*"info"/);
  });
});
