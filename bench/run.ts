/**
 * npm run bench — prints every figure beside its baseline from the same run.
 *
 *   npm run bench                     all targets
 *   npm run bench -- --only sqlite,postgres
 *   npm run bench -- --sessions 64    fewer replayed sessions for a quick look
 *   npm run bench -- --suite registry --registry-sessions 20000
 *
 * Suites: `transcripts` (the stores against the SDK's in-memory store and naive stores) and
 * `registry` (usage folding, list pages and sweeps per backend). Default: both.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type BackendName, openTarget, type TargetName } from './backends.js';
import { captureTurnBatches } from './capture.js';
import { benchRegistry, type RegistryFigures } from './registry.js';
import { fmt } from './stats.js';
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
  },
});
const suites = values.suite?.split(',') ?? ['transcripts', 'registry'];

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

console.log('Capturing the append batches of a real 10-turn query() session (mock model)…');
const captured = (await captureTurnBatches({ turns: 10 })) as Batch[];
const entryCount = captured.reduce((n, b) => n + b.entries.length, 0);
console.log(
  `  ${captured.length} append calls, ${entryCount} entries, ${(
    captured.reduce((n, b) => n + JSON.stringify(b.entries).length, 0) / 1024
  ).toFixed(0)} KiB\n`,
);

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
for (const reason of skipped) console.log(`skipped ${reason}`);

await mkdir('reports', { recursive: true });
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

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (r[i] as string).length)),
  );
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i] as number)).join('  ');
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}
