import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { openBackend } from '../../src/backends/open.js';
import { describeSessionStoreConformance, type StoreUnderTest } from '../../src/testing/index.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function openAt(url: string): Promise<StoreUnderTest> {
  const backend = await openBackend(url);
  return {
    store: backend.store,
    close: () => backend.close(),
    async reopen() {
      await backend.close();
      return openAt(url);
    },
  };
}

describeSessionStoreConformance(
  'file store',
  async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sessionhub-file-'));
    dirs.push(dir);
    return openAt(`file:${path.join(dir, 'store')}`);
  },
  { durable: true },
);
