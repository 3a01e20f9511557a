import { appendFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { createFileBackend } from '../../src/backends/file/index.js';
import { decodeName, encodeName } from '../../src/backends/file/names.js';

let parent: string;
let dir: string;
beforeEach(async () => {
  parent = await mkdtemp(path.join(tmpdir(), 'sessionhub-file-'));
  dir = path.join(parent, 'store');
});
afterEach(async () => {
  await rm(parent, { recursive: true, force: true });
});

async function walk(root: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(root, { withFileTypes: true })) {
    const full = path.join(root, entry.name);
    found.push(full);
    if (entry.isDirectory()) found.push(...(await walk(full)));
  }
  return found;
}

const hostile = [
  '..',
  '../..',
  '/',
  '/etc/passwd',
  '.',
  '~',
  'A',
  'a',
  '^a',
  '%41',
  'x'.repeat(300),
];

describe('file names', () => {
  test('are injective, even ignoring case, and decode back', () => {
    const names = hostile.map(encodeName);
    expect(new Set(names.map((n) => n.toLowerCase())).size).toBe(hostile.length);
    for (const [i, name] of names.entries()) {
      expect(name).toMatch(/^[a-z0-9_%^~-]+$/);
      expect(name.length).toBeLessThanOrEqual(200);
      const decoded = decodeName(name);
      if (decoded !== undefined) expect(decoded).toBe(hostile[i]);
    }
    expect(decodeName(encodeName('x'.repeat(300)))).toBeUndefined();
    expect(encodeName('x'.repeat(300))).not.toBe(encodeName(`${'x'.repeat(299)}y`));
  });
});

describe('file backend', () => {
  test('never writes outside its folder, whatever the keys', async () => {
    const backend = await createFileBackend({ dir });
    for (const projectKey of hostile) {
      for (const sessionId of hostile) {
        await backend.store.append({ projectKey, sessionId }, [{ type: 'm' }]);
        await backend.store.append({ projectKey, sessionId, subpath: sessionId }, [{ type: 's' }]);
      }
    }
    await backend.close();
    const everything = await walk(parent);
    for (const file of everything) {
      expect(file === dir || file.startsWith(dir + path.sep)).toBe(true);
    }
    expect(await readdir(parent)).toEqual(['store']);
    const reopened = await createFileBackend({ dir });
    for (const projectKey of hostile) {
      const ids = (await reopened.store.listSessions(projectKey)).map((s) => s.sessionId).sort();
      expect(ids).toEqual([...hostile].sort());
    }
    expect(
      await reopened.store.listSubkeys({ projectKey: '..', sessionId: 'x'.repeat(300) }),
    ).toEqual(['x'.repeat(300)]);
    await reopened.close();
  });

  test('a line torn by a crash is ignored on load and cut before the next append', async () => {
    const key = { projectKey: 'p', sessionId: 's' };
    const first = await createFileBackend({ dir });
    await first.store.append(key, [{ type: 'a', uuid: '1' }]);
    await first.close();
    const file = path.join(dir, 'p', 'sessions', 's.jsonl');
    await appendFile(file, '{"type":"torn","uu');

    const second = await createFileBackend({ dir });
    expect(await second.store.load(key)).toEqual([{ type: 'a', uuid: '1' }]);
    await second.store.append(key, [{ type: 'b', uuid: '2' }]);
    expect(await second.store.load(key)).toEqual([
      { type: 'a', uuid: '1' },
      { type: 'b', uuid: '2' },
    ]);
    expect(await readFile(file, 'utf8')).toBe('{"type":"a","uuid":"1"}\n{"type":"b","uuid":"2"}\n');
    await second.close();
  });

  test('a summary left behind by a crash is refolded from the transcript', async () => {
    const key = { projectKey: 'p', sessionId: 's' };
    const first = await createFileBackend({ dir });
    await first.store.append(key, [{ type: 'user', uuid: '1', lastPrompt: 'one' }]);
    await first.close();
    // The process died after writing the transcript line but before the summary.
    await appendFile(
      path.join(dir, 'p', 'sessions', 's.jsonl'),
      '{"type":"user","uuid":"2","lastPrompt":"two"}\n',
    );
    const second = await createFileBackend({ dir });
    await second.store.append(key, [{ type: 'assistant', uuid: '3' }]);
    const [summary] = await second.store.listSessionSummaries('p');
    expect(summary?.data.lastPrompt).toBe('two');
    await second.close();
  });

  test('a corrupt index line is reported, not silently dropped', async () => {
    const first = await createFileBackend({ dir });
    await first.store.append({ projectKey: 'p', sessionId: 's' }, [{ type: 'a' }]);
    await first.close();
    await writeFile(path.join(dir, 'p', 'index.jsonl'), '{not json\n');
    const second = await createFileBackend({ dir });
    await expect(second.store.listSessions('p')).rejects.toThrow(SyntaxError);
    await second.close();
  });

  test('the index is compacted once most of it is superseded, and stays correct', async () => {
    const backend = await createFileBackend({ dir });
    for (let i = 0; i < 300; i++) {
      await backend.store.append({ projectKey: 'p', sessionId: `s${i % 3}` }, [
        { type: 'user', lastPrompt: `prompt ${i}` },
      ]);
    }
    await backend.store.delete({ projectKey: 'p', sessionId: 's2' });
    await backend.close();
    const lines = (await readFile(path.join(dir, 'p', 'index.jsonl'), 'utf8')).split('\n');
    expect(lines.length).toBeLessThan(80);
    const reopened = await createFileBackend({ dir });
    const summaries = await reopened.store.listSessionSummaries('p');
    expect(summaries.map((s) => [s.sessionId, s.data.lastPrompt]).sort()).toEqual([
      ['s0', 'prompt 297'],
      ['s1', 'prompt 298'],
    ]);
    await reopened.close();
  });

  test('a directory that cannot be created says what to fix', async () => {
    await writeFile(path.join(parent, 'plain-file'), 'x');
    await expect(
      createFileBackend({ dir: path.join(parent, 'plain-file', 'sub') }),
    ).rejects.toMatchObject({
      code: 'BACKEND_UNAVAILABLE',
    });
  });
});
