/**
 * Registry benchmark, per backend:
 * - append with usage folding, against the same replay with folding off (the baseline);
 * - one owner's list page (50) among N sessions, against a point read of one record;
 * - a sweep that expires and purges N sessions, against the naive sweep a cron job would do
 *   (find what is due, then update and delete each session on its own).
 */
import { randomUUID } from 'node:crypto';
import type { SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import { emptyUsageState } from '../src/core/usage.js';
import { Sweeper } from '../src/hub/sweeper.js';
import { type Backend, ManualClock, type NewSession, tenantProjectKey } from '../src/index.js';
import { sessionBuilder } from '../test/helpers/registry.js';
import { type BackendName, openBenchBackend } from './backends.js';
import { summarize, timed } from './stats.js';
import { type Batch, readdress, replayAppends } from './transcripts.js';

export interface RegistryFigures {
  target: string;
  sessions: number;
  appendFoldP50: number;
  appendNoFoldP50: number;
  appendFoldCallsPerSecond: number;
  appendNoFoldCallsPerSecond: number;
  /** The same replay with one append in flight: what one SDK process's appends see. */
  appendFoldSerialP50: number;
  appendNoFoldSerialP50: number;
  getP50: number;
  ownerPageP50: number;
  ownerDeepPageP50: number;
  tenantPageP50: number;
  filteredPageP50: number;
  expirePerSecond: number;
  purgePerSecond: number;
  naiveSweepPerSecond: number;
  naiveSweepSessions: number;
}

const START = Date.UTC(2026, 0, 1);
const HOUR = 60 * 60 * 1000;
const OWNERS = 100;
const TENANT = 'bench';

function record(id: string, owner: string, createdAt: number, expiresAt: number): NewSession {
  return sessionBuilder(createdAt)(id, {
    tenant: TENANT,
    owner,
    title: `Session ${id.slice(0, 8)}`,
    tags: createdAt % 10 === 0 ? ['flagged'] : ['routine'],
    expiresAt,
    // An hour of retention: a sweep within it expires the session, one after it purges it.
    purgeAt: expiresAt + HOUR,
    usage: emptyUsageState(),
  });
}

/** A two-entry transcript, so that a purge has entries to delete too. */
function tinyTranscript(sessionId: string): SessionStoreEntry[] {
  return [
    { type: 'user', uuid: randomUUID(), sessionId, message: { role: 'user', content: 'hi' } },
    {
      type: 'assistant',
      uuid: randomUUID(),
      sessionId,
      message: { role: 'assistant', content: [{ type: 'text', text: 'hello' }] },
    },
  ];
}

async function inParallel<T>(items: T[], concurrency: number, task: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await task(items[next++] as T);
    }),
  );
}

/** Registers `count` sessions (with transcripts) of OWNERS owners, all due at START + HOUR. */
async function seed(backend: Backend, count: number, concurrency: number, createdFrom: number) {
  const ids = Array.from({ length: count }, () => randomUUID());
  const projectKey = tenantProjectKey(TENANT);
  let index = 0;
  await inParallel(ids, concurrency, async (id) => {
    const i = index++;
    await backend.registry.insert(record(id, `owner-${i % OWNERS}`, createdFrom + i, START + HOUR));
    await backend.store.append({ projectKey, sessionId: id }, tinyTranscript(id));
  });
  return ids;
}

async function appendFigures(
  name: BackendName,
  tenTurns: Batch[],
  sessions: number,
  concurrency: number,
  foldUsage: boolean,
) {
  const opened = await openBenchBackend(name, { foldUsage });
  if (typeof opened === 'string') throw new Error(opened);
  try {
    const projectKey = tenantProjectKey(TENANT);
    const replay = async (count: number, inFlight = concurrency) => {
      const batches: Batch[][] = [];
      for (let i = 0; i < count; i++) {
        const id = randomUUID();
        await opened.backend.registry.insert(
          record(id, `owner-${i % OWNERS}`, START + i, START + 10 * HOUR),
        );
        batches.push(readdress(tenTurns, projectKey, id));
      }
      return replayAppends(opened.backend.store, batches, inFlight);
    };
    await replay(concurrency);
    const loaded = await replay(sessions);
    const serial = await replay(32, 1);
    return { ...loaded, serialP50: serial.p50 };
  } finally {
    await opened.close();
  }
}

async function p50Of(runs: number, task: () => Promise<unknown>): Promise<number> {
  const durations: number[] = [];
  for (let i = 0; i < runs; i++) durations.push((await timed(task)).ms);
  return summarize(durations).p50;
}

export async function benchRegistry(
  name: BackendName,
  options: {
    tenTurns: Batch[];
    appendSessions: number;
    concurrency: number;
    sessions: number;
    naiveSessions: number;
  },
): Promise<RegistryFigures | string> {
  const probe = await openBenchBackend(name);
  if (typeof probe === 'string') return probe;
  await probe.close();

  // Folding off and on, twice each and interleaved, so drift in the machine hits both alike.
  const off: number[][] = [];
  const on: number[][] = [];
  for (let round = 0; round < 2; round++) {
    const a = await appendFigures(
      name,
      options.tenTurns,
      options.appendSessions,
      options.concurrency,
      false,
    );
    const b = await appendFigures(
      name,
      options.tenTurns,
      options.appendSessions,
      options.concurrency,
      true,
    );
    off.push([a.p50, a.callsPerSecond, a.serialP50]);
    on.push([b.p50, b.callsPerSecond, b.serialP50]);
  }
  const best = (runs: number[][], i: number, pick: (a: number, b: number) => number) =>
    runs.map((r) => r[i] as number).reduce(pick);

  const clock = new ManualClock(START);
  const opened = await openBenchBackend(name, { clock });
  if (typeof opened === 'string') return opened;
  const { backend } = opened;
  try {
    // The naive sweep first, on its own sessions, so the set-based sweep below starts clean.
    await seed(backend, options.naiveSessions, options.concurrency, START - 10 * HOUR);
    clock.set(START + 2 * HOUR);
    const naive = await timed(async () => {
      const now = clock.now();
      for (;;) {
        const due = await backend.registry.list(
          { tenant: TENANT },
          { limit: 200, status: ['expired'] },
          now,
        );
        if (due.length === 0) break;
        for (const session of due) {
          await backend.registry.update(TENANT, session.id, session.version, {
            status: 'expired',
            expiredAt: session.expiresAt,
          });
          await backend.registry.remove(TENANT, session.id);
        }
      }
    });
    clock.set(START);

    const ids = await seed(
      backend,
      options.sessions,
      options.concurrency,
      START - options.sessions,
    );
    const owner = 'owner-7';
    const getP50 = await p50Of(200, () =>
      backend.registry.get(TENANT, ids[ids.length >> 1] as string),
    );
    const now = clock.now();
    const firstPage = await backend.registry.list({ tenant: TENANT, owner }, { limit: 50 }, now);
    if (firstPage.length === 0) throw new Error('the owner has no sessions to list');
    const ownerPageP50 = await p50Of(200, () =>
      backend.registry.list({ tenant: TENANT, owner }, { limit: 50 }, now),
    );
    // A page deep in the owner's list: what keyset cursors keep as cheap as the first.
    let cursorRow = firstPage[49];
    for (let page = 0; page < 8; page++) {
      const rows = await backend.registry.list(
        { tenant: TENANT, owner },
        { limit: 50, cursor: cursorRow && { createdAt: cursorRow.createdAt, id: cursorRow.id } },
        now,
      );
      cursorRow = rows[49];
    }
    const deepCursor = cursorRow && { createdAt: cursorRow.createdAt, id: cursorRow.id };
    const ownerDeepPageP50 = await p50Of(200, () =>
      backend.registry.list({ tenant: TENANT, owner }, { limit: 50, cursor: deepCursor }, now),
    );
    const tenantPageP50 = await p50Of(200, () =>
      backend.registry.list({ tenant: TENANT }, { limit: 50 }, now),
    );
    const filteredPageP50 = await p50Of(50, () =>
      backend.registry.list({ tenant: TENANT, owner }, { limit: 50, tag: 'flagged' }, now),
    );

    // The hub's own sweeper, without its lease: first within the retention (it expires every
    // session), then past it (it purges every session, transcripts included).
    const sweeper = new Sweeper({
      registry: backend.registry,
      leases: backend.leases,
      clock,
      holder: 'bench',
    });
    clock.set(START + HOUR + HOUR / 2);
    const expire = await timed(() => sweeper.sweep({ exclusive: false }));
    clock.set(START + 3 * HOUR);
    const purge = await timed(() => sweeper.sweep({ exclusive: false }));
    const expired = expire.value.expired;
    const purged = purge.value.purged;
    if (expired !== options.sessions || purged !== options.sessions) {
      throw new Error(`sweeps expired ${expired} and purged ${purged} of ${options.sessions}`);
    }
    return {
      target: name,
      sessions: options.sessions,
      appendNoFoldP50: best(off, 0, (a, b) => Math.min(a, b)),
      appendFoldP50: best(on, 0, (a, b) => Math.min(a, b)),
      appendNoFoldCallsPerSecond: best(off, 1, (a, b) => Math.max(a, b)),
      appendFoldCallsPerSecond: best(on, 1, (a, b) => Math.max(a, b)),
      appendNoFoldSerialP50: best(off, 2, (a, b) => Math.min(a, b)),
      appendFoldSerialP50: best(on, 2, (a, b) => Math.min(a, b)),
      getP50,
      ownerPageP50,
      ownerDeepPageP50,
      tenantPageP50,
      filteredPageP50,
      expirePerSecond: expired / (expire.ms / 1000),
      purgePerSecond: purged / (purge.ms / 1000),
      naiveSweepPerSecond: options.naiveSessions / (naive.ms / 1000),
      naiveSweepSessions: options.naiveSessions,
    };
  } finally {
    await opened.close();
  }
}
