/**
 * HTTP service benchmark: the real service (`startService`, the code path of `sessionhub serve`)
 * on a SQLite file with the built-in mock model and the rate limit off, loaded with autocannon,
 * beside a bare Fastify app's "hello" route in the same process as the ceiling.
 *
 * - Bare hello and `GET /v1/sessions/{id}` run interleaved (hello, get, hello, get), so that
 *   machine noise hits both alike; each after an unmeasured warm-up.
 * - A message turn: `POST /v1/sessions/{id}/messages` over as many sessions as connections, each
 *   connection on its own session (autocannon's list of URLs, one per connection), so a turn
 *   never meets another turn of its session (409 busy); every session has had its first turn, so
 *   with the warm pool sized for them every measured turn is a follow-up to a parked CLI.
 *
 * autocannon runs in one worker thread (`workers: 1`): the load generator has its own event loop
 * and does not take turns with the servers on theirs.
 */
import { mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import Fastify from 'fastify';
import { loadConfig } from '../src/config/config.js';
import { createApiKey } from '../src/core/api-keys.js';
import { type RunningService, startService } from '../src/server/service.js';

export interface ServiceBenchOptions {
  /** Connections held open by the load generator for every load. */
  connections: number;
  /** Seconds each measured hello and GET load runs. */
  seconds: number;
  /** Message turns each connection sends (the turn load is a fixed number of turns). */
  turnsPerConnection: number;
  /** Progress lines go here. Default: nowhere. */
  log?: (line: string) => void;
}

export type LoadTarget = 'hello' | 'get-session' | 'message-turn';

export interface LoadFigures {
  target: LoadTarget;
  /** 1 and 2 for the interleaved hello and GET rounds; 1 for the turn load. */
  round: number;
  connections: number;
  durationSeconds: number;
  /** Responses of any status. */
  responses: number;
  /** Responses per second over the load's duration. */
  requestsPerSecond: number;
  /** Latency of every response, in ms (autocannon's histogram, 1 ms resolution below 1 s). */
  p50: number;
  p99: number;
  max: number;
  /** Responses with a status other than 2xx. */
  non2xx: number;
  /** Connection errors (refused, reset) and request timeouts, counted apart from responses. */
  errors: number;
  timeouts: number;
  /** Responses by status code. */
  statusCodes: Record<string, number>;
  /**
   * CPU time of this process's main thread (where both servers run) per response, in µs: what a
   * request costs the server, whoever else was using the two cores at the time. NaN off Linux.
   */
  serverCpuMicrosPerResponse: number;
}

export interface ServiceFigures {
  connections: number;
  seconds: number;
  cores: number;
  /** hello, get-session, hello, get-session. */
  rounds: LoadFigures[];
  turns: LoadFigures;
  /** GET-session requests/s over hello's, per round (the goal: ≥ 0.5). */
  getOverHelloByRound: number[];
  /** The best GET round over the best hello round. */
  getOverHelloBest: number;
  /** Warm sessions on the service before and after the turn load. */
  warmBefore: number;
  warmAfter: number;
  /** Time to start the sessions the turn load uses (their first turns), ms. */
  turnSetupMs: number;
  /** No connection error, timeout or non-2xx response in any load on the service. */
  noErrors: boolean;
  totalMs: number;
}

const WARM_UP_SECONDS = 2;
/** Sessions started at once while preparing the turn load: enough to overlap, not to thrash. */
const START_BATCH = 8;
const IDENTITY = { tenant: 'bench', owner: 'bench' };

const now = () => performance.now();

/** Linux's USER_HZ: /proc reports CPU times in these ticks. */
const TICKS_PER_SECOND = 100;

/**
 * CPU time (user + system) this process's main thread has used, in µs, from
 * /proc/self/task/<pid>/stat; NaN where there is no /proc. Not process.cpuUsage(): that adds
 * in the load generator's worker thread.
 */
async function mainThreadCpuMicros(): Promise<number> {
  try {
    const stat = await readFile(`/proc/self/task/${process.pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces; utime and stime are the 12th and
    // 13th fields after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/** One autocannon load, in its own worker thread, reduced to the figures we report. */
async function load(
  target: LoadTarget,
  round: number,
  options: autocannon.Options,
): Promise<LoadFigures> {
  const cpuBefore = await mainThreadCpuMicros();
  const result = await autocannon({ workers: 1, ...options });
  const cpuMicros = (await mainThreadCpuMicros()) - cpuBefore;
  const statusCodes: Record<string, number> = {};
  for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) {
    statusCodes[code] = stat.count ?? 0;
  }
  return {
    target,
    round,
    connections: options.connections ?? 10,
    durationSeconds: result.duration,
    responses: result.requests.total,
    requestsPerSecond: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
    serverCpuMicrosPerResponse: cpuMicros / result.requests.total,
  };
}

/** A bare Fastify app with Fastify's defaults: the ceiling for a route on this machine. */
async function startHello(): Promise<{ url: string; close: () => Promise<void> }> {
  const app = Fastify();
  app.get('/hello', async () => ({ hello: 'world' }));
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url, close: () => app.close() };
}

/** Starts a session with a first turn over the API; returns its id. */
async function startSession(service: RunningService, token: string, i: number): Promise<string> {
  const response = await fetch(`${service.url}/v1/sessions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: `Session ${i}: plan a day in Lisbon` }),
  });
  const body = (await response.json()) as { sessionId?: string; status?: string };
  if (response.status !== 201 || body.status !== 'completed' || !body.sessionId) {
    throw new Error(`Starting a session answered ${response.status}: ${JSON.stringify(body)}`);
  }
  return body.sessionId;
}

export async function benchService(options: ServiceBenchOptions): Promise<ServiceFigures> {
  const log = options.log ?? (() => {});
  const began = now();
  const { connections, seconds } = options;
  const root = await realpath(await mkdtemp(path.join(tmpdir(), 'sessionhub-bench-service-')));
  // Only the flags below: the operator's SESSIONHUB_* environment must not change the run.
  const config = loadConfig({
    env: {},
    flags: {
      db: `sqlite:${path.join(root, 'hub.db')}`,
      dataDir: path.join(root, 'data'),
      port: 0,
      mockModel: true,
      rateLimitPerMinute: 0,
      logLevel: 'silent',
      // Every turn session plus the GET session stays parked between its turns.
      warmSessions: connections + 1,
    },
  });
  const service = await startService(config, { log: () => {} });
  const hello = await startHello();
  try {
    const { record, token } = createApiKey(
      { name: 'bench', tenant: IDENTITY.tenant, owner: IDENTITY.owner },
      service.hub.clock.now(),
    );
    await service.backend.apiKeys.insert(record);
    const auth = { authorization: `Bearer ${token}` };

    // The record read has usage in it: the session has had a turn.
    const sessionId = await startSession(service, token, 0);
    const getUrl = `${service.url}/v1/sessions/${sessionId}`;
    const probe = await fetch(getUrl, { headers: auth });
    const probed = (await probe.json()) as { id?: string };
    if (probe.status !== 200 || probed.id !== sessionId) {
      throw new Error(`GET ${getUrl} answered ${probe.status}: ${JSON.stringify(probed)}`);
    }

    const helloLoad = { url: `${hello.url}/hello`, connections };
    const getLoad = { url: getUrl, connections, headers: auth };
    log(`  service: warm-up, ${WARM_UP_SECONDS} s each of hello and GET session…`);
    await load('hello', 0, { ...helloLoad, duration: WARM_UP_SECONDS });
    await load('get-session', 0, { ...getLoad, duration: WARM_UP_SECONDS });
    const rounds: LoadFigures[] = [];
    for (const round of [1, 2]) {
      log(`  service: round ${round}, ${seconds} s of hello, then ${seconds} s of GET session…`);
      rounds.push(await load('hello', round, { ...helloLoad, duration: seconds }));
      rounds.push(await load('get-session', round, { ...getLoad, duration: seconds }));
    }

    log(`  service: starting ${connections} sessions for the turn load, ${START_BATCH} at once…`);
    const setupStart = now();
    const turnSessions: string[] = [];
    for (let i = 0; i < connections; i += START_BATCH) {
      const batch = Array.from({ length: Math.min(START_BATCH, connections - i) }, (_, j) =>
        startSession(service, token, i + j + 1),
      );
      turnSessions.push(...(await Promise.all(batch)));
    }
    const turnSetupMs = now() - setupStart;
    const warmBefore = service.hub.warmSessions;
    const turnCount = connections * options.turnsPerConnection;
    log(`  service: ${turnCount} message turns over ${connections} connections…`);
    const turns = await load('message-turn', 1, {
      // autocannon gives connection i the URL i mod the list's length (documented for `url`;
      // its types only name a string): one session per connection.
      url: turnSessions.map((id) => `${service.url}/v1/sessions/${id}/messages`) as never,
      connections,
      amount: turnCount,
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'And after that?' }),
      // A turn of 64 at once on two cores takes seconds; only a stuck one should time out.
      timeout: 120,
    });
    const warmAfter = service.hub.warmSessions;

    const ratio = (round: number) => {
      const rps = (target: LoadTarget) =>
        rounds.find((r) => r.target === target && r.round === round)?.requestsPerSecond ?? NaN;
      return rps('get-session') / rps('hello');
    };
    const best = (target: LoadTarget) =>
      Math.max(...rounds.filter((r) => r.target === target).map((r) => r.requestsPerSecond));
    const onService = [...rounds.filter((r) => r.target === 'get-session'), turns];
    return {
      connections,
      seconds,
      cores: availableParallelism(),
      rounds,
      turns,
      getOverHelloByRound: [ratio(1), ratio(2)],
      getOverHelloBest: best('get-session') / best('hello'),
      warmBefore,
      warmAfter,
      turnSetupMs,
      noErrors: onService.every((r) => r.errors === 0 && r.timeouts === 0 && r.non2xx === 0),
      totalMs: now() - began,
    };
  } finally {
    await hello.close();
    await service.shutdown();
    await rm(root, { recursive: true, force: true });
  }
}
