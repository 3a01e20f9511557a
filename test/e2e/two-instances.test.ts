/**
 * Two `sessionhub serve` processes on one PostgreSQL schema behave as one service: a session
 * started through one continues through the other, the session lease keeps turns one at a time
 * across both, a key revoked through the CLI stops working on both, and background sweeps run
 * once per interval between them.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { type MockAnthropic, startMockAnthropic } from '../../src/testing/index.js';
import { freshPostgresUrl, postgresAvailable } from '../helpers/backends.js';
import { assertBuilt, run, type ServeProcess, serve, stopServices } from '../helpers/cli.js';
import { heldReply } from '../helpers/runner.js';
import { TempDirs } from '../helpers/sdk.js';

const TIMEOUT = 120_000;
let mock: MockAnthropic;
const dirs = new TempDirs();
const running: ServeProcess[] = [];
const drops: Array<() => Promise<void>> = [];

beforeAll(async () => {
  assertBuilt();
  mock = await startMockAnthropic();
});
afterEach(async () => {
  await stopServices(running);
  for (const drop of drops.splice(0)) await drop();
  mock.reset();
});
afterAll(async () => {
  await mock.close();
  await dirs.cleanup();
});

const env = {
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
  SESSIONHUB_LOG_LEVEL: 'warn',
  // Keys are read on every request, so a revocation reaches both instances at once.
  SESSIONHUB_AUTH_CACHE_MS: '0',
};
const SWEEP_MS = 200;

async function json<T>(response: Response): Promise<T> {
  return (await response.json()) as T;
}

describe.skipIf(!postgresAvailable)('two instances on one PostgreSQL', () => {
  test(
    'one service: sessions move between instances, one turn at a time, one sweep per interval',
    async () => {
      const { url: db, drop } = await freshPostgresUrl();
      drops.push(drop);
      expect((await run(['migrate', '--db', db])).code).toBe(0);
      const created = await run([
        'keys',
        'create',
        '--tenant',
        'acme',
        '--owner',
        'alice',
        '--json',
        '--db',
        db,
      ]);
      const { token, id: keyId } = JSON.parse(created.stdout) as { token: string; id: string };
      const start = async (name: string) => {
        const service = await serve(
          [
            '--db',
            db,
            '--data-dir',
            await dirs.make(name),
            '--port',
            '0',
            '--anthropic-base-url',
            mock.url,
            '--anthropic-api-key',
            'mock-key',
            '--sweep-interval-ms',
            String(SWEEP_MS),
          ],
          { env },
        );
        running.push(service);
        return service;
      };
      const startedAt = Date.now();
      const [a, b] = [await start('a'), await start('b')];
      const call = (service: ServeProcess, route: string, body?: unknown) =>
        fetch(`${service.url}${route}`, {
          method: body === undefined ? 'GET' : 'POST',
          headers: {
            authorization: `Bearer ${token}`,
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });

      // Started on A, continued on B (cold there), then on A again: one history.
      const first = await json<{ sessionId: string; status: string }>(
        await call(a, '/v1/sessions', { prompt: 'One' }),
      );
      expect(first.status).toBe('completed');
      const id = first.sessionId;
      const onB = await json<{
        status: string;
        warm: boolean;
        session: { usage: { turns: number } };
      }>(await call(b, `/v1/sessions/${id}/messages`, { prompt: 'Two' }));
      expect(onB).toMatchObject({
        status: 'completed',
        warm: false,
        session: { usage: { turns: 2 } },
      });
      // A's warm process missed turn two: A resumes cold rather than answer from a stale view.
      const backOnA = await json<{ warm: boolean; text: string }>(
        await call(a, `/v1/sessions/${id}/messages`, { prompt: 'Three' }),
      );
      expect(backOnA).toMatchObject({ warm: false, text: 'Mock reply to: Three' });
      const lastRequest = mock.requests.findLast((r) => r.sessionId === id);
      expect(JSON.stringify(lastRequest?.body.messages)).toMatch(/One[\s\S]*Two[\s\S]*Three/);

      // A turn running on A makes B answer 409, and B takes the next turn once it is over.
      const held = heldReply('Slow');
      mock.enqueue(held.step);
      const slow = call(a, `/v1/sessions/${id}/messages`, { prompt: 'Slow' });
      await held.reached;
      const busy = await call(b, `/v1/sessions/${id}/messages`, { prompt: 'Me too' });
      expect(busy.status).toBe(409);
      expect((await json<{ error: { code: string } }>(busy)).error.code).toBe('SESSION_BUSY');
      held.release();
      expect((await json<{ status: string }>(await slow)).status).toBe('completed');

      const listedOnB = await json<{ sessions: Array<{ id: string; usage: { turns: number } }> }>(
        await call(b, '/v1/sessions'),
      );
      expect(listedOnB.sessions).toMatchObject([{ id, usage: { turns: 4 } }]);

      // An interrupt sent to B stops the turn running on A.
      const stuck = heldReply('never sent');
      mock.enqueue(stuck.step);
      const cut = call(a, `/v1/sessions/${id}/messages`, { prompt: 'Long' });
      await stuck.reached;
      const interrupt = await call(b, `/v1/sessions/${id}/interrupt`, {});
      expect(await interrupt.json()).toEqual({ interrupted: true });
      expect((await json<{ status: string }>(await cut)).status).toBe('interrupted');
      stuck.release();

      // Background sweeps: both instances tick every 200 ms; the lease lets one sweep run per
      // interval, so the other's ticks are skipped. Wait until both have ticked a few times.
      const sweeps = async (service: ServeProcess) => {
        const text = await (await fetch(`${service.url}/metrics`)).text();
        const count = (outcome: string) =>
          Number(
            new RegExp(`sessionhub_sweeps_total\\{outcome="${outcome}"\\} (\\d+)`).exec(
              text,
            )?.[1] ?? 0,
          );
        return { ran: count('ran'), skipped: count('skipped'), failed: count('failed') };
      };
      let both = { ran: 0, skipped: 0, failed: 0 };
      const deadline = Date.now() + 30_000;
      while (both.ran + both.skipped < 12 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, SWEEP_MS / 2));
        const [x, y] = [await sweeps(a), await sweeps(b)];
        both = { ran: x.ran + y.ran, skipped: x.skipped + y.skipped, failed: x.failed + y.failed };
      }
      const intervals = (Date.now() - startedAt) / SWEEP_MS;
      expect(both.failed).toBe(0);
      expect(both.skipped).toBeGreaterThan(0);
      // At most one sweep per interval (the lease is held for 90% of one) across both.
      expect(both.ran).toBeLessThanOrEqual(Math.ceil(intervals / 0.9) + 1);

      // A key revoked through the CLI is refused by both instances (within their key cache).
      expect((await run(['keys', 'revoke', keyId, '--db', db])).code).toBe(0);
      for (const service of [a, b]) {
        expect((await call(service, '/v1/sessions')).status).toBe(401);
      }
    },
    TIMEOUT,
  );
});
