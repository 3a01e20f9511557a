/**
 * The HTTP API through Fastify's in-process request injection: a hub on a real SQLite file, API
 * keys stored in it, turns run by the real Agent SDK against the mock Anthropic API.
 */
import path from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { openBackend } from '../../src/backends/open.js';
import { createApiKey, type NewApiKey } from '../../src/core/api-keys.js';
import { ManualClock } from '../../src/core/clock.js';
import { createHub, type HubOptions, type SessionHub } from '../../src/hub/hub.js';
import { buildServer, type ServerOptions, type ServerState } from '../../src/server/app.js';
import { type MockAnthropic, startMockAnthropic } from '../../src/testing/index.js';
import { heldReply, mockAgent } from '../helpers/runner.js';
import { TempDirs } from '../helpers/sdk.js';
import { parseSse } from '../helpers/sse.js';

const TIMEOUT = 90_000;
const HOUR = 60 * 60 * 1000;

let mock: MockAnthropic;
const dirs = new TempDirs();
const open: Array<() => Promise<void>> = [];

beforeAll(async () => {
  mock = await startMockAnthropic();
});
afterEach(async () => {
  for (const close of open.splice(0).reverse()) await close();
  mock.reset();
});
afterAll(async () => {
  await mock.close();
  await dirs.cleanup();
});

interface Service {
  app: FastifyInstance;
  hub: SessionHub;
  backend: Backend;
  state: ServerState;
  routes: string[];
  /** Tokens: alice and bob are users of acme, admin is acme's admin, mallory a user of evil. */
  keys: Record<'alice' | 'bob' | 'admin' | 'mallory', string>;
  addKey(input: NewApiKey): Promise<{ id: string; token: string }>;
  call(
    who: string | null,
    method: InjectOptions['method'],
    url: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<LightMyRequestResponse>;
}

async function serve(
  options: {
    hub?: Omit<Partial<HubOptions>, 'backend' | 'runner'>;
    server?: Partial<ServerOptions>;
    clock?: ManualClock;
  } = {},
): Promise<Service> {
  const dataDir = await dirs.make('api');
  const backend = await openBackend(
    `sqlite:${path.join(dataDir, 'hub.db')}`,
    options.clock ? { clock: options.clock } : {},
  );
  const hub = createHub({
    backend,
    ...(options.clock ? { clock: options.clock } : {}),
    ...options.hub,
    runner: { dataDir, agent: mockAgent(mock), random: () => 0.5 },
  });
  const { app, state, routes } = await buildServer({
    hub,
    apiKeys: backend.apiKeys,
    authCacheMs: 0,
    ...options.server,
  });
  open.push(async () => {
    await app.close();
    await hub.close();
    await backend.close();
  });
  const addKey = async (input: NewApiKey) => {
    const { record, token } = createApiKey(input, Date.now());
    await backend.apiKeys.insert(record);
    return { id: record.id, token };
  };
  const keys = {
    alice: (await addKey({ tenant: 'acme', owner: 'alice' })).token,
    bob: (await addKey({ tenant: 'acme', owner: 'bob' })).token,
    admin: (await addKey({ tenant: 'acme', role: 'admin' })).token,
    mallory: (await addKey({ tenant: 'evil', owner: 'alice' })).token,
  };
  const call: Service['call'] = (who, method, url, body, headers = {}) =>
    app.inject({
      method,
      url,
      headers: {
        ...(who ? { authorization: `Bearer ${keys[who as keyof typeof keys] ?? who}` } : {}),
        ...headers,
      },
      ...(body === undefined ? {} : { payload: body as InjectOptions['payload'] }),
    });
  return { app, hub, backend, state, routes, keys, addKey, call };
}

describe('authentication', () => {
  test('every /v1 route needs a live key; the error says what to send', async () => {
    const { call, addKey, backend } = await serve();
    const none = await call(null, 'GET', '/v1/sessions');
    expect(none.statusCode).toBe(401);
    expect(none.json()).toMatchObject({
      error: { code: 'UNAUTHORIZED', message: expect.stringMatching(/Bearer/), details: {} },
    });
    expect((await call('not-a-key', 'GET', '/v1/sessions')).statusCode).toBe(401);
    const forged = 'shk_aaaaaaaaaaaa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    expect((await call(forged, 'GET', '/v1/sessions')).json().error.code).toBe('UNAUTHORIZED');

    const carol = await addKey({ tenant: 'acme', owner: 'carol' });
    expect((await call(carol.token, 'GET', '/v1/sessions')).statusCode).toBe(200);
    // The right id with a wrong secret is refused too.
    const wrongSecret = `${carol.token.slice(0, -3)}xyz`;
    expect((await call(wrongSecret, 'GET', '/v1/sessions')).statusCode).toBe(401);
    await backend.apiKeys.revoke(carol.id, Date.now());
    const revoked = await call(carol.token, 'GET', '/v1/sessions');
    expect(revoked.statusCode).toBe(401);
    expect(revoked.json().error.message).toMatch(/revoked/);

    // Health, readiness, metrics and the API document need no key.
    for (const url of ['/healthz', '/readyz', '/metrics', '/v1/openapi.json']) {
      expect((await call(null, 'GET', url)).statusCode).toBe(200);
    }
  });

  test("another owner's or tenant's session answers exactly as a missing one", async () => {
    const { call } = await serve();
    const created = await call('alice', 'POST', '/v1/sessions', { title: 'mine' });
    expect(created.statusCode).toBe(201);
    const { id } = created.json();
    const missing = '6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b';
    for (const who of ['bob', 'mallory']) {
      for (const [method, suffix] of [
        ['GET', ''],
        ['DELETE', ''],
        ['POST', '/archive'],
        ['GET', '/messages'],
      ] as const) {
        const theirs = await call(who, method, `/v1/sessions/${id}${suffix}`);
        const nothing = await call(who, method, `/v1/sessions/${missing}${suffix}`);
        expect(theirs.statusCode).toBe(404);
        expect(nothing.statusCode).toBe(404);
        expect(theirs.json().error.message.replace(id, 'X')).toBe(
          nothing.json().error.message.replace(missing, 'X'),
        );
      }
    }
    // The tenant's admin sees it; nobody else's listing shows it.
    expect((await call('admin', 'GET', `/v1/sessions/${id}`)).json().owner).toBe('alice');
    expect((await call('bob', 'GET', '/v1/sessions')).json().sessions).toEqual([]);
    expect((await call('mallory', 'GET', '/v1/sessions')).json().sessions).toEqual([]);
  });
});

describe('sessions', () => {
  test('create, read, change, list with filters and a cursor, archive, extend, delete', async () => {
    // A clock moved by hand, so the sessions' creation times (the listing order) differ.
    const clock = new ManualClock(Date.now());
    const { call } = await serve({ clock });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      clock.advance(1000);
      const response = await call('alice', 'POST', '/v1/sessions', {
        title: `trip ${i}`,
        tags: i % 2 === 0 ? ['even'] : ['odd'],
        metadata: { n: i },
      });
      expect(response.statusCode).toBe(201);
      ids.push(response.json().id);
    }
    const first = ids[0] as string;
    const read = await call('alice', 'GET', `/v1/sessions/${first}`);
    expect(read.json()).toMatchObject({
      id: first,
      tenant: 'acme',
      owner: 'alice',
      title: 'trip 0',
      status: 'active',
      version: 1,
    });

    const patched = await call('alice', 'PATCH', `/v1/sessions/${first}`, {
      title: 'Lisbon',
      tags: ['travel', 'travel', 'pt'],
      metadata: { city: 'Lisbon' },
    });
    expect(patched.statusCode).toBe(200);
    expect(patched.json()).toMatchObject({
      title: 'Lisbon',
      tags: ['travel', 'pt'],
      metadata: { city: 'Lisbon' },
      version: 2,
    });

    const even = await call('alice', 'GET', '/v1/sessions?tag=even&limit=10');
    expect(even.json().sessions.map((s: { id: string }) => s.id)).toEqual([ids[4], ids[2]]);
    const pages: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { sessions: Array<{ id: string }>; nextCursor: string | null } = (
        await call('alice', 'GET', `/v1/sessions?limit=2${cursor ? `&cursor=${cursor}` : ''}`)
      ).json();
      pages.push(...page.sessions.map((s) => s.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(pages).toEqual([...ids].reverse());

    const archived = await call('alice', 'POST', `/v1/sessions/${first}/archive`);
    expect(archived.json()).toMatchObject({ status: 'archived', expiresAt: null });
    const listed = await call('alice', 'GET', '/v1/sessions?status=archived,expired');
    expect(listed.json().sessions.map((s: { id: string }) => s.id)).toEqual([first]);
    expect((await call('alice', 'POST', `/v1/sessions/${first}/unarchive`)).json().status).toBe(
      'active',
    );
    const until = clock.now() + 400 * 24 * HOUR;
    const extended = await call('alice', 'POST', `/v1/sessions/${first}/extend`, { until });
    expect(extended.json().expiresAt).toBe(until);

    const deleted = await call('alice', 'DELETE', `/v1/sessions/${first}`);
    expect(deleted.statusCode).toBe(204);
    expect(deleted.body).toBe('');
    expect((await call('alice', 'GET', `/v1/sessions/${first}`)).statusCode).toBe(404);
  });

  test('bad requests get 422, 413 or 404 with the error shape, and change nothing', async () => {
    const { call, hub } = await serve({ server: { bodyLimitBytes: 4096 } });
    const cases: Array<[string, Promise<LightMyRequestResponse>, number, string]> = [
      [
        'unknown field',
        call('alice', 'POST', '/v1/sessions', { titel: 'x' }),
        422,
        'INVALID_INPUT',
      ],
      ['wrong type', call('alice', 'POST', '/v1/sessions', { tags: 'x' }), 422, 'INVALID_INPUT'],
      [
        'options without a prompt',
        call('alice', 'POST', '/v1/sessions', { options: { model: 'x' } }),
        422,
        'INVALID_INPUT',
      ],
      [
        'broken JSON',
        call('alice', 'POST', '/v1/sessions', '{"title": ', {
          'content-type': 'application/json',
        }),
        422,
        'INVALID_INPUT',
      ],
      [
        'too large',
        call('alice', 'POST', '/v1/sessions', { metadata: { blob: 'x'.repeat(8000) } }),
        413,
        'BODY_TOO_LARGE',
      ],
      ['bad id', call('alice', 'GET', '/v1/sessions/not-a-uuid'), 422, 'INVALID_INPUT'],
      ['bad status', call('alice', 'GET', '/v1/sessions?status=asleep'), 422, 'INVALID_INPUT'],
      ['unknown query', call('alice', 'GET', '/v1/sessions?colour=red'), 422, 'INVALID_INPUT'],
      ['bad cursor', call('alice', 'GET', '/v1/sessions?cursor=zzz'), 422, 'INVALID_INPUT'],
      ['no route', call('alice', 'GET', '/v1/nothing-here'), 404, 'ROUTE_NOT_FOUND'],
      [
        'a user setting limits',
        call('alice', 'POST', '/v1/sessions', { limits: { maxTurnsPerSession: 1 } }),
        403,
        'FORBIDDEN',
      ],
    ];
    for (const [what, pending, status, code] of cases) {
      const response = await pending;
      expect({ what, status: response.statusCode, code: response.json().error?.code }).toEqual({
        what,
        status,
        code,
      });
      expect(response.json().error.message.length).toBeGreaterThan(10);
    }
    expect((await hub.stats({ tenant: 'acme', admin: true })).sessions.total).toBe(0);
  });
});

describe('turns', () => {
  test(
    'a first turn as JSON, a follow-up as a stream of events, the transcript a page at a time',
    async () => {
      const { call } = await serve();
      const started = await call('alice', 'POST', '/v1/sessions', {
        prompt: 'Plan a day in Porto',
        title: 'porto',
      });
      expect(started.statusCode).toBe(201);
      const outcome = started.json();
      expect(outcome).toMatchObject({
        status: 'completed',
        text: 'Mock reply to: Plan a day in Porto',
        warm: false,
        session: { title: 'porto', owner: 'alice', usage: { turns: 1 } },
        spent: { turns: 1 },
      });
      expect(outcome.spent.costUsd).toBeCloseTo(outcome.session.usage.costUsd, 9);
      const id = outcome.sessionId;

      const streamed = await call(
        'alice',
        'POST',
        `/v1/sessions/${id}/messages`,
        { prompt: 'And dinner?' },
        { accept: 'text/event-stream' },
      );
      expect(streamed.statusCode).toBe(200);
      expect(streamed.headers['content-type']).toMatch(/^text\/event-stream/);
      const events = parseSse(streamed.body);
      const names = events.map((e) => e.event);
      expect(names).toContain('system');
      expect(names).toContain('assistant');
      expect(names.at(-2)).toBe('result');
      expect(names.at(-1)).toBe('done');
      expect(events.at(-1)?.data).toMatchObject({
        status: 'completed',
        warm: true,
        text: 'Mock reply to: And dinner?',
        session: { usage: { turns: 2 } },
      });

      const all: unknown[] = [];
      let cursor: string | null = null;
      let total = 0;
      do {
        const page: { entries: unknown[]; total: number; nextCursor: string | null } = (
          await call(
            'alice',
            'GET',
            `/v1/sessions/${id}/messages?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
          )
        ).json();
        expect(page.entries.length).toBeLessThanOrEqual(3);
        all.push(...page.entries);
        total = page.total;
        cursor = page.nextCursor;
      } while (cursor);
      expect(all).toHaveLength(total);
      const texts = all
        .filter((e) => (e as { type: string }).type === 'user')
        .map((e) => JSON.stringify(e));
      expect(texts.some((t) => t.includes('Plan a day in Porto'))).toBe(true);
      expect(texts.some((t) => t.includes('And dinner?'))).toBe(true);

      // Fork at the end with a prompt, streamed; the lineage shows it.
      const forked = await call(
        'alice',
        'POST',
        `/v1/sessions/${id}/fork`,
        { prompt: 'Or Braga?', title: 'braga' },
        { accept: 'text/event-stream' },
      );
      const done = parseSse(forked.body).at(-1);
      expect(done).toMatchObject({
        event: 'done',
        data: { status: 'completed', session: { title: 'braga', forkedFrom: { sessionId: id } } },
      });
      const lineage = (await call('alice', 'GET', `/v1/sessions/${id}/lineage`)).json();
      expect(lineage.descendants).toHaveLength(1);
      const stats = (await call('admin', 'GET', '/v1/stats')).json();
      expect(stats.sessions.total).toBe(2);
      expect(stats.usage.total.turns).toBe(3);
    },
    TIMEOUT,
  );

  test(
    'refusals keep their status whether or not a stream was asked for',
    async () => {
      const clock = new ManualClock(Date.now());
      const { call } = await serve({
        clock,
        hub: { expiry: { idleTtlMs: HOUR }, limits: { maxSessionsPerOwner: 3 } },
      });
      const create = async (body: object = {}, who = 'alice') =>
        (await call(who, 'POST', '/v1/sessions', body)).json().id as string;
      const send = (id: string, stream: boolean) =>
        call(
          'alice',
          'POST',
          `/v1/sessions/${id}/messages`,
          { prompt: 'hi' },
          stream ? { accept: 'text/event-stream' } : {},
        );
      const archived = await create();
      await call('alice', 'POST', `/v1/sessions/${archived}/archive`);
      // A session whose first turn spends past its cost limit (the SDK stops it at the budget).
      const poor = await call('admin', 'POST', '/v1/sessions', {
        owner: 'alice',
        limits: { maxCostPerSessionUsd: 0.001 },
      });
      const spent = await call('alice', 'POST', `/v1/sessions/${poor.json().id}/messages`, {
        prompt: 'Spend it',
      });
      expect(spent.json().status).toBe('stopped');
      const requests = mock.requests.length;
      const expiring = await create();
      for (const stream of [false, true]) {
        const a = await send(archived, stream);
        expect([a.statusCode, a.json().error.code]).toEqual([409, 'SESSION_ARCHIVED']);
        const p = await send(poor.json().id, stream);
        expect([p.statusCode, p.json().error.code]).toEqual([402, 'LIMIT_EXCEEDED']);
      }
      const fourth = await call('alice', 'POST', '/v1/sessions', {});
      expect([fourth.statusCode, fourth.json().error.details.limit]).toEqual([
        429,
        'maxSessionsPerOwner',
      ]);
      clock.advance(2 * HOUR);
      const gone = await send(expiring, true);
      expect([gone.statusCode, gone.json().error.code]).toEqual([410, 'SESSION_EXPIRED']);
      // None of the refused turns reached the model.
      expect(mock.requests).toHaveLength(requests);
    },
    TIMEOUT,
  );

  test(
    'a busy session answers 409; interrupt stops the running turn, which stays resumable',
    async () => {
      const { call } = await serve();
      const id = (await call('alice', 'POST', '/v1/sessions', { prompt: 'Hello' })).json()
        .sessionId as string;
      const held = heldReply('slow');
      mock.enqueue(held.step);
      const running = call('alice', 'POST', `/v1/sessions/${id}/messages`, {
        prompt: 'Write a saga',
      });
      await held.reached;
      const busy = await call('alice', 'POST', `/v1/sessions/${id}/messages`, { prompt: 'me' });
      expect([busy.statusCode, busy.json().error.code]).toEqual([409, 'SESSION_BUSY']);
      expect((await call('bob', 'POST', `/v1/sessions/${id}/interrupt`)).statusCode).toBe(404);
      const interrupt = await call('alice', 'POST', `/v1/sessions/${id}/interrupt`);
      expect(interrupt.json()).toEqual({ interrupted: true });
      const outcome = await running;
      held.release();
      expect(outcome.statusCode).toBe(200);
      expect(outcome.json().status).toBe('interrupted');
      expect((await call('alice', 'POST', `/v1/sessions/${id}/interrupt`)).json()).toEqual({
        interrupted: false,
      });
      const after = await call('alice', 'POST', `/v1/sessions/${id}/messages`, { prompt: 'Go' });
      expect(after.json().status).toBe('completed');
    },
    TIMEOUT,
  );

  test(
    'a failed turn answers 502 TURN_FAILED with the outcome; the session is marked failed',
    async () => {
      const { call } = await serve();
      const id = (await call('alice', 'POST', '/v1/sessions', { prompt: 'Hello' })).json()
        .sessionId as string;
      for (let i = 0; i < 12; i++) mock.enqueue({ fail: { status: 400, shouldRetry: false } });
      const failed = await call('alice', 'POST', `/v1/sessions/${id}/messages`, { prompt: 'x' });
      expect(failed.statusCode).toBe(502);
      expect(failed.json().error).toMatchObject({
        code: 'TURN_FAILED',
        details: { turn: { status: 'failed', session: { status: 'failed' } } },
      });
      expect((await call('alice', 'GET', `/v1/sessions/${id}`)).json().status).toBe('failed');
    },
    TIMEOUT,
  );
});

describe('operations', () => {
  test('per-key rate limits answer 429 with when to retry; other keys are unaffected', async () => {
    const { call, addKey } = await serve({ server: { rateLimitPerMinute: 5 } });
    const slow = await addKey({ tenant: 'acme', owner: 'carol', rateLimitPerMinute: 2 });
    expect((await call(slow.token, 'GET', '/v1/sessions')).statusCode).toBe(200);
    expect((await call(slow.token, 'GET', '/v1/sessions')).statusCode).toBe(200);
    const limited = await call(slow.token, 'GET', '/v1/sessions');
    expect(limited.statusCode).toBe(429);
    expect(limited.json().error).toMatchObject({
      code: 'RATE_LIMITED',
      details: { limitPerMinute: 2, retryAfterSeconds: expect.any(Number) },
    });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    for (let i = 0; i < 5; i++) {
      expect((await call('alice', 'GET', '/v1/sessions')).statusCode).toBe(200);
    }
    expect((await call('alice', 'GET', '/v1/sessions')).statusCode).toBe(429);
    expect((await call('bob', 'GET', '/v1/sessions')).statusCode).toBe(200);
  });

  test(
    'metrics count requests, turns, tokens, cost and errors; readiness drops while draining',
    async () => {
      const { call, state } = await serve();
      const started = await call('alice', 'POST', '/v1/sessions', { prompt: 'Count me' });
      const cost = started.json().spent.costUsd as number;
      await call('alice', 'GET', '/v1/sessions/6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b');
      await call(null, 'GET', '/v1/sessions');
      const text = (await call(null, 'GET', '/metrics')).body;
      const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? Number.NaN);
      expect(
        value(
          /sessionhub_http_requests_total\{method="POST",route="\/v1\/sessions",status="201"\} (\d+)/,
        ),
      ).toBe(1);
      expect(value(/sessionhub_turns_total\{status="completed"\} (\d+)/)).toBe(1);
      expect(value(/sessionhub_turn_tokens_total\{kind="output"\} (\d+)/)).toBeGreaterThan(0);
      expect(value(/^sessionhub_turn_cost_usd_total (\S+)$/m)).toBeCloseTo(cost, 9);
      expect(value(/sessionhub_errors_total\{code="SESSION_NOT_FOUND"\} (\d+)/)).toBe(1);
      expect(value(/sessionhub_errors_total\{code="UNAUTHORIZED"\} (\d+)/)).toBe(1);
      expect(value(/sessionhub_warm_sessions (\d+)/)).toBe(1);
      expect(value(/sessionhub_running_turns (\d+)/)).toBe(0);
      expect(text).toMatch(/sessionhub_http_request_duration_seconds_bucket/);

      expect((await call(null, 'GET', '/readyz')).json()).toEqual({
        status: 'ready',
        backend: 'sqlite',
      });
      state.draining = true;
      expect((await call(null, 'GET', '/readyz')).statusCode).toBe(503);
      const refused = await call('alice', 'GET', '/v1/sessions');
      expect([refused.statusCode, refused.json().error.code]).toEqual([503, 'UNAVAILABLE']);
      expect((await call(null, 'GET', '/healthz')).statusCode).toBe(200);
    },
    TIMEOUT,
  );

  test('the OpenAPI document describes every route the service has', async () => {
    const { routes, call } = await serve();
    const document = (await call(null, 'GET', '/v1/openapi.json')).json();
    expect(document.openapi).toBe('3.1.0');
    const documented = new Set<string>();
    for (const [route, methods] of Object.entries(document.paths as Record<string, object>)) {
      for (const method of Object.keys(methods)) {
        documented.add(`${method.toUpperCase()} ${route.replace(/\{(\w+)\}/g, ':$1')}`);
      }
    }
    // Every route the server answers is in the document, and nothing else is.
    expect(routes).toContain('POST /v1/sessions/:id/messages');
    const served = routes.filter((route) => route !== 'GET /v1/openapi.json');
    expect([...documented].sort()).toEqual([...served].sort());
    const createSchema =
      document.paths['/v1/sessions'].post.requestBody.content['application/json'].schema;
    expect(createSchema.additionalProperties).toBe(false);
    expect(Object.keys(createSchema.properties)).toEqual(
      expect.arrayContaining(['title', 'tags', 'metadata', 'prompt', 'options']),
    );
  });
});
