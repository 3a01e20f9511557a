/**
 * npm run bench — prints every figure beside its baseline from the same run.
 *
 *   npm run bench                     all targets
 *   npm run bench -- --only sqlite,postgres
 *   npm run bench -- --sessions 64    fewer replayed sessions for a quick look
 *   npm run bench -- --suite registry --registry-sessions 20000
 *   npm run bench -- --suite runner --runner-turns 30
 *   npm run bench -- --suite service --service-seconds 5
 *
 * Suites: `transcripts` (the stores against the SDK's in-memory store and naive stores),
 * `registry` (usage folding, list pages and sweeps per backend) and `runner` (turns through the
 * hub with the real SDK against the mock: cold against warm, memory per warm session, sessions
 * in parallel) and `service` (the HTTP service under autocannon beside a bare Fastify route).
 * Default: all four.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type BackendName, openTarget, type TargetName } from './backends.js';
import { captureTurnBatches } from './capture.js';
import { benchRegistry, type RegistryFigures } from './registry.js';
import { benchRunner, type Distribution, type RunnerFigures } from './runner.js';
import { benchService, type LoadFigures, type ServiceFigures } from './service.js';
import { fmt, p99Rank } from './stats.js';
import { type Batch, benchTranscripts, type TranscriptFigures } from './transcripts.js';

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    sessions: { type: 'string', default: '128' },
    concurrency: { type: 'string', default: '16' },
    suite: { type: 'string' },
    'registry-sessions': { type: 'string', default: '100000' },
    'file-sessions': { type: 'string', default: '100000' },
    'naive-sessions': { type: 'string', default: '2000' },
    'runner-turns': { type: 'string', default: '100' },
    'runner-warm': { type: 'string', default: '8' },
    'runner-parallel': { type: 'string', default: '20' },
    'service-connections': { type: 'string', default: '64' },
    'service-seconds': { type: 'string', default: '10' },
    'service-turns': { type: 'string', default: '5' },
  },
});
const suites = values.suite?.split(',') ?? ['transcripts', 'registry', 'runner', 'service'];

const ALL: TargetName[] = [
  'sdk-in-memory',
  'memory',
  'sqlite',
  'file',
  'naive-postgres',
  'postgres',
  'naive-redis',
  'redis',
];
// The baselines always run: the SDK's in-memory store, and the naive store beside its backend.
const wanted = values.only?.split(',');
const targets = wanted
  ? ALL.filter(
      (t) =>
        t === 'sdk-in-memory' || wanted.includes(t) || wanted.includes(t.replace('naive-', '')),
    )
  : ALL;

// The store suites replay the append batches of a real session; the runner and service suites
// need none.
const storeSuites = suites.includes('transcripts') || suites.includes('registry');
let captured: Batch[] = [];
if (storeSuites) {
  console.log('Capturing the append batches of a real 10-turn query() session (mock model)…');
  captured = (await captureTurnBatches({ turns: 10 })) as Batch[];
  const entryCount = captured.reduce((n, b) => n + b.entries.length, 0);
  console.log(
    `  ${captured.length} append calls, ${entryCount} entries, ${(
      captured.reduce((n, b) => n + JSON.stringify(b.entries).length, 0) / 1024
    ).toFixed(0)} KiB\n`,
  );
}

const results: TranscriptFigures[] = [];
const skipped: string[] = [];
if (suites.includes('transcripts')) {
  for (const name of targets) {
    const target = await openTarget(name);
    if (typeof target === 'string') {
      skipped.push(`${name}: ${target}`);
      continue;
    }
    try {
      process.stdout.write(`  ${name}… `);
      const figures = await benchTranscripts(target, {
        tenTurns: captured,
        sessions: Number(values.sessions),
        concurrency: Number(values.concurrency),
        listDir: path.join(tmpdir(), 'sessionhub-bench-project'),
      });
      results.push(figures);
      console.log('done');
    } finally {
      await target.close();
    }
  }

  console.log(
    `\nTranscript stores — append replay at ${values.concurrency} in flight (${values.sessions} sessions × 10 turns; "p50 @1": the same with one append in flight), load p50, SDK listSessions({ sessionStore }) p50 over 1,000 sessions. Times in ms.\n`,
  );
  printTable(
    [
      'target',
      'append p50',
      'append p99',
      'calls/s',
      'p50 @1',
      'load 10-turn',
      'load 200-turn',
      'listSessions 1k',
    ],
    results.map((r) => [
      r.target,
      fmt(r.appendP50, 3),
      fmt(r.appendP99, 3),
      r.appendCallsPerSecond.toFixed(0),
      fmt(r.serialAppendP50, 3),
      fmt(r.load10P50, 3),
      fmt(r.load200P50, 3),
      fmt(r.list1000P50, 1),
    ]),
  );
}

const registryResults: RegistryFigures[] = [];
if (suites.includes('registry')) {
  const kinds: BackendName[] = ['memory', 'sqlite', 'file', 'postgres', 'redis'];
  for (const name of kinds.filter((k) => !wanted || wanted.includes(k))) {
    const sessions = Number(
      name === 'file' ? values['file-sessions'] : values['registry-sessions'],
    );
    process.stdout.write(`  registry ${name} (${sessions} sessions)… `);
    const figures = await benchRegistry(name, {
      tenTurns: captured,
      appendSessions: Number(values.sessions),
      concurrency: Number(values.concurrency),
      sessions,
      naiveSessions: Number(values['naive-sessions']),
    });
    if (typeof figures === 'string') {
      skipped.push(`registry ${name}: ${figures}`);
      console.log('skipped');
      continue;
    }
    registryResults.push(figures);
    console.log('done');
  }
  console.log(
    `\nRegistry — append p50 with usage folding vs. without (same replay, at ${values.concurrency} in flight and at 1); list page of 50 for one owner (first page, and page 10 by cursor), for the whole tenant, and with a tag filter, vs. a point read (get); the hub's sweeper expiring every session, then purging every session with its transcript, vs. a naive per-session sweep. Times in ms, rates in sessions/s.\n`,
  );
  printTable(
    [
      'target',
      'sessions',
      'append fold',
      'no fold',
      'slower',
      '@1 fold',
      '@1 no fold',
      '@1 slower',
      'get',
      'owner page',
      'page 10',
      'tenant page',
      'tag filter',
      'expire/s',
      'purge/s',
      'naive/s',
    ],
    registryResults.map((r) => [
      r.target,
      String(r.sessions),
      fmt(r.appendFoldP50, 3),
      fmt(r.appendNoFoldP50, 3),
      `${(((r.appendFoldP50 - r.appendNoFoldP50) / r.appendNoFoldP50) * 100).toFixed(0)}%`,
      fmt(r.appendFoldSerialP50, 3),
      fmt(r.appendNoFoldSerialP50, 3),
      `${(((r.appendFoldSerialP50 - r.appendNoFoldSerialP50) / r.appendNoFoldSerialP50) * 100).toFixed(0)}%`,
      fmt(r.getP50, 3),
      fmt(r.ownerPageP50, 2),
      fmt(r.ownerDeepPageP50, 2),
      fmt(r.tenantPageP50, 2),
      fmt(r.filteredPageP50, 2),
      r.expirePerSecond.toFixed(0),
      r.purgePerSecond.toFixed(0),
      r.naiveSweepPerSecond.toFixed(0),
    ]),
  );
}

let runnerResult: RunnerFigures | null = null;
if (suites.includes('runner')) {
  runnerResult = await benchRunner({
    turns: Number(values['runner-turns']),
    warmSessions: Number(values['runner-warm']),
    parallel: Number(values['runner-parallel']),
    log: (line) => console.log(line),
  });
  printRunner(runnerResult);
}

let serviceResult: ServiceFigures | null = null;
if (suites.includes('service')) {
  serviceResult = await benchService({
    connections: Number(values['service-connections']),
    seconds: Number(values['service-seconds']),
    turnsPerConnection: Number(values['service-turns']),
    log: (line) => console.log(line),
  });
  printService(serviceResult);
}
for (const reason of skipped) console.log(`skipped ${reason}`);

await mkdir('reports', { recursive: true });
if (storeSuites) {
  await writeFile(
    'reports/bench-transcripts.json',
    JSON.stringify(
      {
        at: new Date().toISOString(),
        captured: captured.length,
        results,
        registry: registryResults,
        skipped,
      },
      null,
      2,
    ),
  );
}
if (serviceResult) {
  await writeFile(
    'reports/bench-service.json',
    JSON.stringify({ at: new Date().toISOString(), ...serviceResult }, null, 2),
  );
}
if (runnerResult) {
  await writeFile(
    'reports/bench-runner.json',
    JSON.stringify({ at: new Date().toISOString(), ...runnerResult }, null, 2),
  );
}

function printRunner(r: RunnerFigures): void {
  const n = r.cold.turn.count;
  const rank = p99Rank(n);
  console.log(
    `\nRunner — follow-up turns, hub.send() to turn.done(), the real SDK CLI against the zero-latency mock, SQLite file; ${n} cold (warm pool off: the CLI starts and resumes from the store) and ${n} warm (a session parked in the pool) turns, interleaved, beside the bare model round trip (the request the CLI sent, replayed with fetch). Each p99 rests on ${n} samples (${rank === 1 ? 'the slowest' : `the ${ordinal(rank)} slowest`}). Overhead: turn − model requests per turn × model p50. "to result": until the SDK's result message; "after": the runner's work after it; "CLI": the CLI's own duration_ms. Times in ms.\n`,
  );
  const dist = (d: Distribution, digits = 1) => [fmt(d.p50, digits), fmt(d.p99, digits)];
  printTable(
    [
      'turn',
      'samples',
      'p50',
      'p99',
      'overhead p50',
      'overhead p99',
      'to result p50',
      'after p50',
      'CLI p50',
      'model calls',
      'overhead vs cold',
    ],
    [
      [
        'model round trip (baseline)',
        String(r.model.count),
        ...dist(r.model, 2),
        '—',
        '—',
        '—',
        '—',
        '—',
        '1',
        '—',
      ],
      ...[r.cold, r.warm].map((m) => [
        m.mode === 'cold' ? 'cold (warm: false)' : 'warm (pool)',
        String(m.turn.count),
        ...dist(m.turn),
        ...dist(m.overhead),
        fmt(m.toResult.p50, 1),
        fmt(m.afterResult.p50, 1),
        fmt(m.cliDuration.p50, 0),
        String(m.modelRequestsPerTurn),
        `${((m.overhead.p50 / r.cold.overhead.p50) * 100).toFixed(1)}%`,
      ]),
    ],
  );
  const ratio = r.warmOverCold * 100;
  console.log(
    `\nWarm overhead p50 ${fmt(r.warm.overhead.p50, 1)} ms = ${ratio.toFixed(1)}% of cold ${fmt(r.cold.overhead.p50, 1)} ms (goal ≤ 10%): ${ratio <= 10 ? 'met' : 'NOT met'}.`,
  );

  const m = r.memory;
  console.log(
    `\nMemory of ${m.sessions} warm sessions (each after a first turn and a warm follow-up): the parked CLI processes with their children, PSS (shared pages divided among the processes sharing them) and RSS, from /proc; the hub process's heap after a full GC, minus before. MiB.\n`,
  );
  printTable(
    ['warm sessions', 'processes', 'PSS/session', 'RSS/session', 'PSS total', 'Node heap/session'],
    [
      [
        String(m.sessions),
        String(m.processes),
        fmt(m.pssMiBPerSession, 1),
        fmt(m.rssMiBPerSession, 1),
        fmt(m.pssMiBTotal, 0),
        fmt(m.nodeHeapMiBPerSession, 2),
      ],
    ],
  );

  console.log(
    `\nSessions in parallel on ${r.cores} cores: hub.start() for all at once, then hub.send() of a follow-up to all at once; the warm pool sized for them (maxSessions = sessions), and off. An error is a turn that threw or did not complete. Times in ms (wall in s).\n`,
  );
  printTable(
    ['pool', 'phase', 'sessions', 'errors', 'wall s', 'turns/s', 'p50', 'p99', 'ran warm'],
    r.parallel.map((p) => [
      p.pool,
      p.phase,
      String(p.sessions),
      String(p.errors),
      (p.wallMs / 1000).toFixed(2),
      p.turnsPerSecond.toFixed(1),
      ...dist(p.turn, 0),
      String(p.warmTurns),
    ]),
  );
  for (const p of r.parallel) {
    for (const error of p.errorSamples) console.log(`  ${p.pool} ${p.phase} error: ${error}`);
  }
  const errors = r.parallel.reduce((sum, p) => sum + p.errors, 0);
  const sessions = r.parallel[0]?.sessions ?? 0;
  console.log(
    `\n${sessions} sessions in parallel on ${r.cores} cores: ${errors} errors (goal: none): ${errors === 0 ? 'met' : 'NOT met'}. Runner suite: ${(r.totalMs / 1000).toFixed(0)} s.`,
  );
}

function printService(r: ServiceFigures): void {
  const turnCount = r.turns.responses + r.turns.errors + r.turns.timeouts;
  console.log(
    `\nService — autocannon (in a worker thread) at ${r.connections} connections against the real service (SQLite file, mock model, rate limit off) and, as the ceiling, a bare Fastify app's "hello" route in the same process; hello and GET session interleaved, ${r.seconds} s each, twice; the message turn as ${turnCount} POST /v1/sessions/{id}/messages over ${r.connections} warm sessions, one per connection. Latency in ms; % hello: requests/s as a share of the same round's hello; server CPU: the main thread's (both servers') CPU time per response, from /proc (for a turn, without the CLI processes).\n`,
  );
  const helloOf = (round: number) =>
    r.rounds.find((l) => l.target === 'hello' && l.round === round)?.requestsPerSecond ?? NaN;
  const name = (l: LoadFigures) =>
    l.target === 'hello'
      ? 'bare hello (ceiling)'
      : l.target === 'get-session'
        ? 'GET /v1/sessions/{id}'
        : 'POST …/messages (turn)';
  printTable(
    [
      'target',
      'round',
      'requests/s',
      'p50',
      'p99',
      'max',
      'responses',
      'non-2xx',
      'errors',
      '% hello',
      'server CPU µs/req',
    ],
    [...r.rounds, r.turns].map((l) => [
      name(l),
      String(l.round),
      l.requestsPerSecond.toFixed(l.target === 'message-turn' ? 1 : 0),
      fmt(l.p50, 0),
      fmt(l.p99, 0),
      fmt(l.max, 0),
      String(l.responses),
      String(l.non2xx),
      String(l.errors + l.timeouts),
      l.target === 'message-turn'
        ? '—'
        : `${((l.requestsPerSecond / helloOf(l.round)) * 100).toFixed(1)}%`,
      fmt(l.serverCpuMicrosPerResponse, l.target === 'message-turn' ? 0 : 1),
    ]),
  );
  for (const l of [...r.rounds, r.turns]) {
    const codes = Object.entries(l.statusCodes).filter(([code]) => !code.startsWith('2'));
    if (codes.length > 0 || l.timeouts > 0) {
      console.log(
        `  ${name(l)} round ${l.round}: ${codes.map(([code, n]) => `${n}× ${code}`).join(', ')}${l.timeouts > 0 ? ` ${l.timeouts} timeouts` : ''}`,
      );
    }
  }
  const best = r.getOverHelloBest * 100;
  console.log(
    `\nGET session at ${r.getOverHelloByRound.map((x) => `${(x * 100).toFixed(1)}%`).join(' and ')} of bare hello by round, best against best ${best.toFixed(1)}% (goal ≥ 50%): ${best >= 50 ? 'met' : 'NOT met'}.`,
  );
  const cpuOf = (target: LoadFigures['target'], round: number) =>
    r.rounds.find((l) => l.target === target && l.round === round)?.serverCpuMicrosPerResponse ??
    Number.NaN;
  console.log(
    `Server CPU per request, GET session against hello: ${[1, 2]
      .map(
        (round) =>
          `round ${round} ${fmt(cpuOf('get-session', round), 1)} against ${fmt(cpuOf('hello', round), 1)} µs (${((cpuOf('hello', round) / cpuOf('get-session', round)) * 100).toFixed(1)}%)`,
      )
      .join(
        ', ',
      )}; the % is the share of hello's throughput GET would get were the server thread the only limit.`,
  );
  console.log(
    `${r.connections} connections, no errors (no connection error, timeout or non-2xx on the service): ${r.noErrors ? 'met' : 'NOT met'}. Warm sessions before the turn load ${r.warmBefore}, after ${r.warmAfter}; starting the turn sessions took ${(r.turnSetupMs / 1000).toFixed(1)} s. Service suite: ${(r.totalMs / 1000).toFixed(0)} s.`,
  );
}

function ordinal(n: number): string {
  const suffix =
    n % 10 === 1 && n !== 11
      ? 'st'
      : n % 10 === 2 && n !== 12
        ? 'nd'
        : n % 10 === 3 && n !== 13
          ? 'rd'
          : 'th';
  return `${n}${suffix}`;
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (r[i] as string).length)),
  );
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i] as number)).join('  ');
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}
