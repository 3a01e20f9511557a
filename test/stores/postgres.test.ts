import { afterAll, describe } from 'vitest';
import { openBackend } from '../../src/backends/open.js';
import { describeSessionStoreConformance, type StoreUnderTest } from '../../src/testing/index.js';
import { freshPostgresUrl } from '../helpers/backends.js';
import { requireService } from '../helpers/services.js';

// Off CI a missing PostgreSQL skips with instructions; under CI=true requireService throws.
const ok = await requireService('postgres');

// Schemas are dropped once the whole file is done: close() and reopen() must keep the data.
const drops: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const drop of drops.splice(0)) await drop();
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

describe.skipIf(!ok)('postgres', () => {
  describeSessionStoreConformance(
    'postgres store',
    async () => {
      const { url, drop } = await freshPostgresUrl();
      drops.push(drop);
      return openAt(url);
    },
    { durable: true },
  );
});
