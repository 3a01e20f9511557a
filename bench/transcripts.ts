/**
 * Transcript store benchmark: replays the append batches that real query() turns produce against
 * every backend, with the SDK's own InMemorySessionStore as the baseline in the same run.
 */
import { randomUUID } from 'node:crypto';
import {
  listSessions,
  type SessionKey,
  type SessionStore,
  type SessionStoreEntry,
} from '@anthropic-ai/claude-agent-sdk';
import type { BenchTarget } from './backends.js';
import { summarize, timed } from './stats.js';

export interface Batch {
  key: SessionKey;
  entries: SessionStoreEntry[];
}

export interface TranscriptFigures {
  target: string;
  appendP50: number;
  appendP99: number;
  appendCallsPerSecond: number;
  appendCalls: number;
  /** The same replay with one append in flight: the cost of a call without queueing. */
  serialAppendP50: number;
  load10P50: number;
  load200P50: number;
  list1000P50: number;
}

/** The turn's batches re-addressed to another session, with uuids made unique per copy. */
export function readdress(
  batches: Batch[],
  projectKey: string,
  sessionId: string,
  copy = 0,
): Batch[] {
  const suffix = copy === 0 ? '' : `-r${copy}`;
  return batches.map(({ key, entries }) => ({
    key: { projectKey, sessionId, ...(key.subpath ? { subpath: key.subpath } : {}) },
    entries: entries.map((entry) => ({
      ...entry,
      ...(entry.uuid ? { uuid: `${entry.uuid}${suffix}` } : {}),
      ...(typeof entry.parentUuid === 'string'
        ? { parentUuid: `${entry.parentUuid}${suffix}` }
        : {}),
      ...(entry.sessionId ? { sessionId } : {}),
    })),
  }));
}

/** Learns the projectKey the SDK derives from a directory, by asking a recording store. */
export async function projectKeyFor(dir: string): Promise<string> {
  let seen: string | undefined;
  const probe: SessionStore = {
    async append() {},
    async load() {
      return null;
    },
    async listSessions(projectKey) {
      seen = projectKey;
      return [];
    },
  };
  await listSessions({ dir, sessionStore: probe });
  if (!seen) throw new Error('the SDK did not ask for a projectKey');
  return seen;
}

export interface TranscriptBenchOptions {
  /** Batches of a 10-turn session, in the order real query() calls appended them. */
  tenTurns: Batch[];
  /** Sessions replayed for the append figures. */
  sessions: number;
  /** Appends in flight at once. */
  concurrency: number;
  /** The directory whose projectKey the SDK's listSessions() will ask for. */
  listDir: string;
}

export async function replayAppends(store: SessionStore, sessions: Batch[][], concurrency: number) {
  const durations: number[] = [];
  let next = 0;
  const started = process.hrtime.bigint();
  // Like concurrent SDK processes: each worker replays whole sessions, one append after another.
  const worker = async () => {
    for (;;) {
      const session = sessions[next++];
      if (!session) return;
      for (const batch of session) {
        const { ms } = await timed(() => store.append(batch.key, batch.entries));
        durations.push(ms);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { ...summarize(durations), callsPerSecond: durations.length / seconds };
}

async function medianLoad(store: SessionStore, key: SessionKey, runs: number): Promise<number> {
  const durations: number[] = [];
  for (let i = 0; i < runs; i++) {
    const { ms, value } = await timed(() => store.load(key));
    if (!value || value.length === 0) throw new Error('load returned nothing');
    durations.push(ms);
  }
  return summarize(durations).p50;
}

export async function benchTranscripts(
  target: BenchTarget,
  options: TranscriptBenchOptions,
): Promise<TranscriptFigures> {
  const { store } = target;
  const projectKey = await projectKeyFor(options.listDir);

  // Warm up connections, statement caches and JIT without measuring.
  const warm = Array.from({ length: options.concurrency }, () =>
    readdress(options.tenTurns, 'warmup', randomUUID()),
  );
  await replayAppends(store, warm, options.concurrency);

  const sessions = Array.from({ length: options.sessions }, () =>
    readdress(options.tenTurns, 'appends', randomUUID()),
  );
  const appends = await replayAppends(store, sessions, options.concurrency);
  const serial = await replayAppends(
    store,
    Array.from({ length: 32 }, () => readdress(options.tenTurns, 'serial', randomUUID())),
    1,
  );

  const tenTurnKey = sessions[0]?.[0]?.key as SessionKey;
  const mainKey = { projectKey: tenTurnKey.projectKey, sessionId: tenTurnKey.sessionId };
  const load10P50 = await medianLoad(store, mainKey, 30);

  const longId = randomUUID();
  for (let copy = 0; copy < 20; copy++) {
    for (const batch of readdress(options.tenTurns, 'long', longId, copy)) {
      await store.append(batch.key, batch.entries);
    }
  }
  const load200P50 = await medianLoad(store, { projectKey: 'long', sessionId: longId }, 20);

  const firstTurn = options.tenTurns.slice(
    0,
    Math.max(1, Math.floor(options.tenTurns.length / 10)),
  );
  const ids = Array.from({ length: 1000 }, () => randomUUID());
  for (let i = 0; i < ids.length; i += options.concurrency) {
    await Promise.all(
      ids.slice(i, i + options.concurrency).map(async (id) => {
        for (const batch of readdress(firstTurn, projectKey, id)) {
          await store.append(batch.key, batch.entries);
        }
      }),
    );
  }
  const listDurations: number[] = [];
  // A store without summaries makes the SDK load every transcript: a few runs tell enough.
  for (let run = 0; run < 10 && !(run >= 3 && (listDurations[0] ?? 0) > 1000); run++) {
    const { ms, value } = await timed(() =>
      listSessions({ dir: options.listDir, sessionStore: store }),
    );
    if (value.length !== 1000) throw new Error(`listSessions saw ${value.length} of 1000 sessions`);
    listDurations.push(ms);
  }

  return {
    target: target.name,
    appendP50: appends.p50,
    appendP99: appends.p99,
    appendCallsPerSecond: appends.callsPerSecond,
    appendCalls: appends.count,
    serialAppendP50: serial.p50,
    load10P50,
    load200P50,
    list1000P50: summarize(listDurations).p50,
  };
}
