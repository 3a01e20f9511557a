/**
 * The file backend's registry beyond the hub suite: what lands in the folder (records and usage
 * in the project index, nothing left after a remove), crash safety (torn lines, a transcript
 * ahead of its index), usage folded once per stored entry and charged only to registered
 * sessions, several backends of one process racing on one folder, and listings that agree with
 * the memory registry on random data.
 */
import { appendFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { createFileBackend } from '../../src/backends/file/index.js';
import { encodeName } from '../../src/backends/file/names.js';
import { createMemoryBackend } from '../../src/backends/memory/index.js';
import {
  type NewSession,
  type StoredSession,
  tenantProjectKey,
} from '../../src/backends/registry.js';
import { ManualClock } from '../../src/core/clock.js';
import type { TranscriptEntry } from '../../src/core/entries.js';
import { isSessionHubError } from '../../src/core/errors.js';
import {
  SESSION_STATUSES,
  type SessionQuery,
  type SessionStatus,
} from '../../src/core/session-record.js';
import { emptyUsageState } from '../../src/core/usage.js';
import { syntheticTurn } from '../../src/testing/transcripts.js';
import { seededRandom } from '../helpers/random.js';
import { sessionBuilder } from '../helpers/registry.js';

const START = Date.UTC(2026, 0, 1, 12);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

let parent: string;
let dir: string;
const opened: Backend[] = [];

beforeEach(async () => {
  parent = await mkdtemp(path.join(tmpdir(), 'sessionhub-file-registry-'));
  dir = path.join(parent, 'store');
});
afterEach(async () => {
  for (const backend of opened.splice(0)) await backend.close();
  await rm(parent, { recursive: true, force: true });
});

async function openFile(clock: ManualClock, options: { foldUsage?: boolean } = {}) {
  const backend = await createFileBackend({ dir, clock, ...options });
  opened.push(backend);
  return backend;
}

const build = sessionBuilder(START);
/** Sessions here are due a day after START unless a test says otherwise. */
const session = (id: string, fields: Partial<NewSession> = {}) =>
  build(id, { expiresAt: START + DAY, ...fields });

function key(id: string, tenant = 'acme') {
  return { projectKey: tenantProjectKey(tenant), sessionId: id };
}

/** A turn of `id` whose cost-state says the session has spent `cumulative` USD so far. */
function turn(id: string, cumulative: number, parentUuid: string | null = null) {
  return syntheticTurn({ sessionId: id, cumulativeCostUsd: cumulative, parentUuid });
}

async function indexLines(tenant = 'acme'): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(
    path.join(dir, encodeName(tenantProjectKey(tenant)), 'index.jsonl'),
    'utf8',
  );
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function walk(root: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(root, { withFileTypes: true })) {
    const full = path.join(root, entry.name);
    found.push(full);
    if (entry.isDirectory()) found.push(...(await walk(full)));
  }
  return found;
}

/** Every file under the folder whose name or content mentions `text`. */
async function mentions(text: string): Promise<string[]> {
  const found: string[] = [];
  for (const file of await walk(dir)) {
    if (path.basename(file).includes(encodeName(text))) {
      found.push(file);
      continue;
    }
    const content = await readFile(file, 'utf8').catch(() => '');
    if (content.includes(text)) found.push(file);
  }
  return found;
}

/** Runs the same steps on a memory backend and a file backend. */
async function twins(clock: ManualClock): Promise<Backend[]> {
  return [createMemoryBackend({ clock }), await openFile(clock)];
}

describe('file registry: persistence', () => {
  test('records, usage and daily usage survive close and reopen', async () => {
    const clock = new ManualClock(START);
    const first = await openFile(clock);
    await first.registry.insert(session('s1', { title: 'One', tags: ['x'] }));
    await first.registry.insert(session('s2', { owner: 'bob', createdAt: START + 1 }));
    const one = turn('s1', 0.25);
    await first.store.append(key('s1'), one.entries);
    await first.store.append(key('s1'), turn('s1', 0.75, one.assistantUuid).entries);
    await first.registry.update('acme', 's2', 1, { title: 'Two', tags: ['y', 'z'] });
    clock.advance(2 * DAY);
    expect(await first.registry.expireDue(clock.now(), 10)).toHaveLength(2);

    const before = {
      s1: await first.registry.get('acme', 's1'),
      s2: await first.registry.get('acme', 's2'),
      page: await first.registry.list({ tenant: 'acme' }, { limit: 10 }, clock.now()),
      daily: await first.registry.dailyUsage({ tenant: 'acme' }, '2026-01-01', '2026-12-31'),
    };
    expect(before.s1?.usage.counted.costUsd).toBe(0.75);
    expect(before.s2).toMatchObject({ title: 'Two', status: 'expired', version: 3 });
    expect(before.daily).toEqual([
      expect.objectContaining({ owner: 'alice', day: '2026-01-01', costUsd: 0.75, turns: 2 }),
    ]);
    await first.close();

    const second = await openFile(clock);
    expect(await second.registry.get('acme', 's1')).toEqual(before.s1);
    expect(await second.registry.get('acme', 's2')).toEqual(before.s2);
    expect(await second.registry.list({ tenant: 'acme' }, { limit: 10 }, clock.now())).toEqual(
      before.page,
    );
    expect(
      await second.registry.dailyUsage({ tenant: 'acme' }, '2026-01-01', '2026-12-31'),
    ).toEqual(before.daily);
    // A sweep after the restart sees every tenant without being asked for one first.
    expect(await second.registry.expireDue(clock.now(), 10)).toEqual([]);
  });

  test('a torn index line loses no earlier record, and the next write cuts it off', async () => {
    const clock = new ManualClock(START);
    const first = await openFile(clock);
    for (const id of ['a', 'b', 'c']) await first.registry.insert(session(id));
    await first.registry.update('acme', 'b', 1, { title: 'kept' });
    await first.close();
    const index = path.join(dir, encodeName(tenantProjectKey('acme')), 'index.jsonl');
    await appendFile(index, '{"session":"d","record":{"id":"d","tena');

    const second = await openFile(clock);
    expect(await second.registry.get('acme', 'b')).toMatchObject({ title: 'kept', version: 2 });
    expect(await second.registry.get('acme', 'd')).toBeNull();
    const page = await second.registry.list({ tenant: 'acme' }, { limit: 10 }, clock.now());
    expect(page.map((s) => s.id)).toEqual(['c', 'b', 'a']);
    await second.registry.insert(session('e'));
    const lines = await indexLines();
    expect(lines.at(-1)).toMatchObject({ session: 'e', record: { id: 'e', version: 1 } });
    expect(lines).toHaveLength(5);
  });

  test('compaction keeps records, usage and daily usage, and nothing superseded', async () => {
    const clock = new ManualClock(START);
    const first = await openFile(clock);
    await first.registry.insert(session('s1'));
    await first.registry.insert(session('s2', { owner: 'bob' }));
    await first.store.append(key('s1'), turn('s1', 0.5).entries);
    clock.advance(DAY);
    await first.store.append(key('s2'), turn('s2', 0.125).entries);
    for (let version = 1; version <= 100; version++) {
      await first.registry.update('acme', 's2', version, { title: `title ${version}` });
    }
    const before = await first.registry.dailyUsage({ tenant: 'acme' }, '2026-01-01', '2026-01-31');
    const s1 = await first.registry.get('acme', 's1');
    await first.close();

    const lines = await indexLines();
    expect(lines.length).toBeLessThan(70);
    const second = await openFile(clock);
    expect(await second.registry.get('acme', 's1')).toEqual(s1);
    expect(await second.registry.get('acme', 's2')).toMatchObject({ title: 'title 100' });
    expect(
      await second.registry.dailyUsage({ tenant: 'acme' }, '2026-01-01', '2026-01-31'),
    ).toEqual(before);
    expect(before.map((d) => [d.day, d.owner, d.costUsd])).toEqual([
      ['2026-01-01', 'alice', 0.5],
      ['2026-01-02', 'bob', 0.125],
    ]);
  });
});

describe('file registry: usage folded in the append', () => {
  test('in the same index line as the summary, once per stored entry', async () => {
    const clock = new ManualClock(START);
    const backend = await openFile(clock);
    await backend.registry.insert(session('s'));
    const { entries } = turn('s', 0.5);
    await backend.store.append(key('s'), entries);
    const after = await indexLines();
    expect(after).toHaveLength(2);
    expect(Object.keys(after[1] as object).sort()).toEqual([
      'charge',
      'session',
      'summary',
      'usage',
    ]);
    expect(after[1]).toMatchObject({ charge: { owner: 'alice', costUsd: 0.5, turns: 1 } });

    // The SDK retries a failed append: entries with a uuid are skipped, the cost-state (which
    // has none) is stored again and recognised as a repeat by the fold.
    await backend.store.append(key('s'), entries);
    await backend.store.append(
      key('s'),
      entries.filter((entry) => entry.uuid !== undefined),
    );
    expect(await indexLines()).toHaveLength(3);
    expect((await backend.registry.get('acme', 's'))?.usage.counted).toMatchObject({
      costUsd: 0.5,
      turns: 1,
    });
    const daily = await backend.registry.dailyUsage({ tenant: 'acme' }, '2026-01-01', '2026-01-01');
    expect(daily).toEqual([expect.objectContaining({ costUsd: 0.5, turns: 1 })]);
  });

  test('charged to the owner only once the session is registered; adopted usage is kept', async () => {
    const clock = new ManualClock(START);
    const [memory, file] = await twins(clock);
    const one = turn('s', 0.5);
    const two = turn('s', 0.75, one.assistantUuid);
    const agent = turn('s', 9);
    for (const backend of [memory, file] as Backend[]) {
      await backend.store.append(key('s'), one.entries);
      expect(
        await backend.registry.dailyUsage({ tenant: 'acme' }, '2026-01-01', '2026-01-01'),
      ).toEqual([]);
      const adopted = await backend.registry.insert(session('s'));
      expect(adopted.usage.counted.costUsd).toBe(0.5);
      await backend.store.append(key('s'), two.entries);
      // A subagent's transcript folds nothing.
      await backend.store.append({ ...key('s'), subpath: 'agent-1' }, agent.entries);
    }
    const results = await Promise.all(
      [memory, file].map(async (backend) => ({
        record: await (backend as Backend).registry.get('acme', 's'),
        daily: await (backend as Backend).registry.dailyUsage(
          { tenant: 'acme' },
          '2026-01-01',
          '2026-01-01',
        ),
      })),
    );
    expect(results[1]).toEqual(results[0]);
    expect(results[1]?.daily).toEqual([expect.objectContaining({ costUsd: 0.25, turns: 1 })]);
  });

  test('an insert that brings a usage state replaces the folded one; appends fold onto it', async () => {
    const clock = new ManualClock(START);
    const [memory, file] = await twins(clock);
    const one = turn('s', 0.5);
    const two = turn('s', 0.75, one.assistantUuid);
    for (const backend of [memory, file] as Backend[]) {
      await backend.store.append(key('s'), one.entries);
      await backend.registry.insert({ ...session('s'), usage: emptyUsageState() });
      await backend.store.append(key('s'), two.entries);
    }
    const [a, b] = await Promise.all(
      [memory, file].map((x) => (x as Backend).registry.get('acme', 's')),
    );
    expect(b).toEqual(a);
    expect(b?.usage.counted.costUsd).toBe(0.75);
  });

  test('a transcript written ahead of its index line is folded by the next append, once', async () => {
    const clock = new ManualClock(START);
    const reference = createMemoryBackend({ clock });
    const turns = [turn('s', 0.5)];
    turns.push(turn('s', 0.75, turns[0]?.assistantUuid));
    turns.push(turn('s', 1, turns[1]?.assistantUuid));
    await reference.registry.insert(session('s'));
    for (const t of turns) await reference.store.append(key('s'), t.entries);

    const first = await openFile(clock);
    await first.registry.insert(session('s'));
    await first.store.append(key('s'), (turns[0] as { entries: TranscriptEntry[] }).entries);
    await first.close();
    // The process died after writing turn two's entries, before their index line.
    const transcript = path.join(dir, encodeName(tenantProjectKey('acme')), 'sessions', 's.jsonl');
    const second = turns[1] as { entries: TranscriptEntry[] };
    await appendFile(transcript, `${second.entries.map((e) => JSON.stringify(e)).join('\n')}\n`);

    const reopened = await openFile(clock);
    // The SDK retries turn two, then moves on to turn three.
    await reopened.store.append(
      key('s'),
      second.entries.filter((e) => e.uuid !== undefined),
    );
    await reopened.store.append(key('s'), (turns[2] as { entries: TranscriptEntry[] }).entries);
    const got = await reopened.registry.get('acme', 's');
    const want = await reference.registry.get('acme', 's');
    expect(got?.usage).toEqual(want?.usage);
    expect(
      await reopened.registry.dailyUsage({ tenant: 'acme' }, '2026-01-01', '2026-01-01'),
    ).toEqual([expect.objectContaining({ costUsd: 1, turns: 3 })]);
  });

  test('many sessions appending at once share index writes and lose nothing', async () => {
    const clock = new ManualClock(START);
    const first = await openFile(clock);
    const ids = Array.from({ length: 40 }, (_, i) => `s${i}`);
    for (const id of ids) await first.registry.insert(session(id, { owner: `o${id.length}` }));
    await Promise.all(
      ids.map(async (id) => {
        let previous: string | null = null;
        for (let t = 1; t <= 3; t++) {
          const next = turn(id, 0.125 * t, previous);
          previous = next.assistantUuid;
          // Entry by entry, as the SDK's batches often are: many index lines in flight at once.
          for (const entry of next.entries) await first.store.append(key(id), [entry]);
        }
      }),
    );
    await first.close();
    const second = await openFile(clock);
    for (const id of ids) {
      expect((await second.registry.get('acme', id))?.usage.counted).toMatchObject({
        costUsd: 0.375,
        turns: 3,
      });
    }
    const summaries = await second.store.listSessionSummaries(tenantProjectKey('acme'));
    expect(summaries).toHaveLength(ids.length);
    const daily = await second.registry.dailyUsage({ tenant: 'acme' }, '2026-01-01', '2026-01-01');
    expect(daily.reduce((sum, d) => sum + d.costUsd, 0)).toBeCloseTo(15, 9);
    expect(daily.reduce((sum, d) => sum + d.turns, 0)).toBe(120);
  });

  test('foldUsage: false writes no usage at all', async () => {
    const clock = new ManualClock(START);
    const backend = await openFile(clock, { foldUsage: false });
    await backend.registry.insert(session('s'));
    await backend.store.append(key('s'), turn('s', 0.5).entries);
    expect((await backend.registry.get('acme', 's'))?.usage).toEqual(emptyUsageState());
    expect((await indexLines()).some((line) => 'usage' in line || 'charge' in line)).toBe(false);
    expect(
      await backend.registry.dailyUsage({ tenant: 'acme' }, '2026-01-01', '2026-01-01'),
    ).toEqual([]);
  });
});

describe('file registry: records beside transcripts', () => {
  test('a registered session without entries is invisible to the store', async () => {
    const backend = await openFile(new ManualClock(START));
    await backend.registry.insert(session('s'));
    expect(await backend.store.listSessions(tenantProjectKey('acme'))).toEqual([]);
    expect(await backend.store.listSessionSummaries(tenantProjectKey('acme'))).toEqual([]);
    expect(await backend.store.load(key('s'))).toBeNull();
    await backend.store.append(key('s'), [{ type: 'user', uuid: 'u1' }]);
    expect(await backend.store.listSessions(tenantProjectKey('acme'))).toHaveLength(1);
  });

  test('an id registered twice is refused with SESSION_EXISTS; another tenant may use it', async () => {
    const backend = await openFile(new ManualClock(START));
    await backend.registry.insert(session('s'));
    const error = await backend.registry.insert(session('s')).catch((e: unknown) => e);
    expect(isSessionHubError(error, 'SESSION_EXISTS')).toBe(true);
    await backend.registry.insert(session('s', { tenant: 'other' }));
    expect(await backend.registry.get('other', 's')).not.toBeNull();
  });

  test('remove, purgeDue and the store delete leave nothing that mentions the session', async () => {
    const clock = new ManualClock(START);
    const backend = await openFile(clock);
    await backend.registry.insert(session('keep-000'));
    const doomed = ['doomed-remove', 'doomed-purge', 'doomed-delete'];
    for (const id of doomed) {
      await backend.registry.insert(session(id, { owner: 'bob' }));
      await backend.store.append(key(id), turn(id, 0.5).entries);
      await backend.store.append({ ...key(id), subpath: 'agent-a' }, [{ type: 'x', uuid: '1' }]);
      await backend.store.append({ ...key(id), subpath: 'y'.repeat(300) }, [{ type: 'x' }]);
      expect(await backend.store.listSubkeys(key(id))).toHaveLength(2);
    }
    expect(await backend.registry.remove('acme', 'doomed-remove')).toBe(true);
    expect(await backend.registry.remove('acme', 'doomed-remove')).toBe(false);
    await backend.registry.update('acme', 'doomed-purge', 1, {
      status: 'expired',
      expiredAt: START,
      purgeAt: START + HOUR,
    });
    clock.advance(HOUR);
    expect(await backend.registry.purgeDue(clock.now(), 10)).toHaveLength(1);
    await backend.store.delete(key('doomed-delete'));
    expect(await backend.registry.get('acme', 'doomed-delete')).toBeNull();

    for (const id of doomed) {
      expect(await backend.registry.get('acme', id)).toBeNull();
      expect(await backend.store.load(key(id))).toBeNull();
      expect(await backend.store.listSubkeys(key(id))).toEqual([]);
      // Only the index's `deleted` lines still name them, until compaction.
      const left = (await mentions(id)).map((file) => path.basename(file));
      expect(left).toEqual(['index.jsonl']);
    }
    for (let version = 1; version <= 80; version++) {
      await backend.registry.update('acme', 'keep-000', version, { title: `${version}` });
    }
    for (const id of doomed) expect(await mentions(id)).toEqual([]);
    // The spend stays with the owner after the sessions are gone.
    expect(
      await backend.registry.dailyUsage(
        { tenant: 'acme', owner: 'bob' },
        '2026-01-01',
        '2026-01-01',
      ),
    ).toEqual([expect.objectContaining({ costUsd: 1.5, turns: 3 })]);
    await backend.close();
    const reopened = await openFile(clock);
    const page = await reopened.registry.list({ tenant: 'acme' }, { limit: 10 }, clock.now());
    expect(page.map((s) => s.id)).toEqual(['keep-000']);
  });
});

describe('file registry: several backends of this process on one folder', () => {
  test('racing inserts of one id: exactly one wins', async () => {
    const clock = new ManualClock(START);
    const backends = await Promise.all([1, 2, 3, 4].map(() => openFile(clock)));
    for (let round = 0; round < 10; round++) {
      const results = await Promise.allSettled(
        backends.map((backend, i) =>
          backend.registry.insert(session(`s${round}`, { owner: `o${i}` })),
        ),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const result of results) {
        if (result.status === 'rejected') {
          expect(isSessionHubError(result.reason, 'SESSION_EXISTS')).toBe(true);
        }
      }
    }
  });

  test('racing updates: one winner per version, nothing lost, appends never in the way', async () => {
    const clock = new ManualClock(START);
    const backends = await Promise.all([1, 2, 3].map(() => openFile(clock)));
    await backends[0]?.registry.insert(session('s'));
    let previous: string | null = null;
    const appends: Promise<void>[] = [];
    const tags: string[] = [];
    for (let i = 0; i < 12; i++) {
      // Each backend adds its own tag with compare-and-set, retrying on a lost race.
      await Promise.all(
        backends.map(async (backend, b) => {
          for (;;) {
            const current = (await backend.registry.get('acme', 's')) as StoredSession;
            const tag = `t${i}-${b}`;
            const next = await backend.registry.update('acme', 's', current.version, {
              tags: [...current.tags, tag],
            });
            if (next) {
              tags.push(tag);
              return;
            }
          }
        }),
      );
      const t = turn('s', 0.1 * (i + 1), previous);
      previous = t.assistantUuid;
      appends.push((backends[i % 3] as Backend).store.append(key('s'), t.entries));
    }
    await Promise.all(appends);
    const final = (await backends[2]?.registry.get('acme', 's')) as StoredSession;
    expect([...final.tags].sort()).toEqual([...tags].sort());
    expect(final.version).toBe(1 + 36);
    expect(final.usage.counted.turns).toBe(12);
  });

  test('racing expireDue and purgeDue count every session exactly once', async () => {
    const clock = new ManualClock(START);
    const backends = await Promise.all([1, 2, 3, 4].map(() => openFile(clock)));
    for (let i = 0; i < 90; i++) {
      const tenant = ['acme', 'globex', 'initech'][i % 3] as string;
      await backends[i % 4]?.registry.insert(
        session(`s${i}`, { tenant, expiresAt: START + (i % 5) * HOUR }),
      );
    }
    clock.advance(5 * HOUR);
    // Every session is reported by exactly one sweeper: the ids never repeat.
    const sweep = async (run: (backend: Backend) => Promise<Array<{ id: string }>>) => {
      const seen = new Set<string>();
      const counts = await Promise.all(
        backends.map(async (backend) => {
          let total = 0;
          for (;;) {
            const swept = await run(backend);
            for (const { id } of swept) {
              expect(seen.has(id)).toBe(false);
              seen.add(id);
            }
            const n = swept.length;
            if (n === 0) return total;
            total += n;
          }
        }),
      );
      return counts.reduce((a, b) => a + b, 0);
    };
    expect(await sweep((b) => b.registry.expireDue(clock.now(), 7))).toBe(90);
    for (const tenant of ['acme', 'globex', 'initech']) {
      const page = await backends[0]?.registry.list({ tenant }, { limit: 200 }, clock.now());
      for (const s of page ?? []) {
        expect(s).toMatchObject({ status: 'expired', expiredAt: s.expiresAt, version: 2 });
        await backends[1]?.registry.update(tenant, s.id, 2, { purgeAt: clock.now() });
      }
    }
    expect(await sweep((b) => b.registry.purgeDue(clock.now(), 7))).toBe(90);
    const counts = await backends[3]?.registry.countByStatus({ tenant: 'acme' }, clock.now());
    expect(counts?.byStatus).toEqual({ active: 0, archived: 0, expired: 0, failed: 0 });
  });
});

describe('file registry: listings agree with the memory registry', () => {
  test('every page of random queries on random data, plus counts and forks', async () => {
    const { next, pick } = seededRandom(20260101);
    const clock = new ManualClock(START);
    const [memory, file] = await twins(clock);
    const tenants = ['acme', 'globex'];
    const owners = ['alice', 'bob', 'carol', 'dave'];
    const tags = ['red', 'green', 'blue'];
    const titles = [null, 'Trip to Lisbon', 'lisbon food', 'Budget', 'LISBON', '100%_done', 'a\\b'];
    const ids: Array<{ tenant: string; id: string }> = [];
    for (let i = 0; i < 400; i++) {
      const tenant = pick(tenants);
      const createdAt = START + Math.floor(next() * 50) * HOUR; // many ties on createdAt
      const status = pick(SESSION_STATUSES);
      const expiresAt = next() < 0.2 ? null : createdAt + Math.floor(next() * 100) * HOUR;
      const parentId = ids.length > 0 && next() < 0.2 ? pick(ids) : undefined;
      const record = session(`id-${Math.floor(next() * 1e6).toString(36)}-${i}`, {
        tenant,
        owner: pick(owners),
        title: pick(titles),
        tags: tags.filter(() => next() < 0.4),
        status,
        createdAt,
        lastActiveAt: createdAt + Math.floor(next() * 20) * HOUR,
        expiresAt,
        forkedFrom:
          parentId && parentId.tenant === tenant
            ? { sessionId: parentId.id, messageUuid: null }
            : null,
      });
      ids.push({ tenant, id: record.id });
      for (const backend of [memory, file] as Backend[]) await backend.registry.insert(record);
    }
    // Some removals, so the lists have holes.
    for (let i = 0; i < 40; i++) {
      const { tenant, id } = pick(ids);
      const removed = await Promise.all(
        [memory, file].map((b) => (b as Backend).registry.remove(tenant, id)),
      );
      expect(removed[1]).toBe(removed[0]);
    }

    for (let q = 0; q < 150; q++) {
      const now = START + Math.floor(next() * 120) * HOUR;
      const scope = { tenant: pick(tenants), ...(next() < 0.3 ? { owner: pick(owners) } : {}) };
      const query: SessionQuery = { limit: 1 + Math.floor(next() * 30) };
      if (next() < 0.3) query.owner = pick(owners);
      if (next() < 0.3) {
        query.status = SESSION_STATUSES.filter(() => next() < 0.5) as SessionStatus[];
        if (query.status.length === 0) query.status = ['active'];
      }
      if (next() < 0.3) query.tag = pick(tags);
      if (next() < 0.3) query.titleContains = pick(['lisbon', 'LIS', '%', '_', '\\', 'budget']);
      if (next() < 0.2) query.createdFrom = START + Math.floor(next() * 50) * HOUR;
      if (next() < 0.2) query.createdTo = START + Math.floor(next() * 50) * HOUR;
      if (next() < 0.2) query.activeFrom = START + Math.floor(next() * 70) * HOUR;
      if (next() < 0.2) query.activeTo = START + Math.floor(next() * 70) * HOUR;
      for (let page = 0; page < 50; page++) {
        const [want, got] = await Promise.all(
          [memory, file].map((b) => (b as Backend).registry.list(scope, query, now)),
        );
        expect(got).toEqual(want);
        if ((want?.length ?? 0) <= query.limit) break;
        const last = want?.[query.limit - 1] as StoredSession;
        query.cursor = { createdAt: last.createdAt, id: last.id };
      }
      const [wantCounts, gotCounts] = await Promise.all(
        [memory, file].map((b) => (b as Backend).registry.countByStatus(scope, now)),
      );
      expect(gotCounts).toEqual(wantCounts);
    }
    for (const tenant of tenants) {
      for (const owner of owners) {
        const statuses = SESSION_STATUSES.filter(() => next() < 0.5) as SessionStatus[];
        const [want, got] = await Promise.all(
          [memory, file].map((b) => (b as Backend).registry.countOwned(tenant, owner, statuses)),
        );
        expect(got).toBe(want);
      }
    }
    for (const { tenant, id } of ids.slice(0, 100)) {
      const [want, got] = await Promise.all(
        [memory, file].map((b) => (b as Backend).registry.forksOf(tenant, id)),
      );
      expect(got).toEqual(want);
    }
  });
});
