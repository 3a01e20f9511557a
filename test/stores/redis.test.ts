import { afterAll, describe } from 'vitest';
import { openBackend } from '../../src/backends/open.js';
import { describeSessionStoreConformance, type StoreUnderTest } from '../../src/testing/index.js';
import { freshRedisUrl, redisAvailable } from '../helpers/backends.js';

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

// Off CI a missing Redis skips with instructions; under CI=true requireService throws instead.
describe.skipIf(!redisAvailable)('redis', () => {
  describeSessionStoreConformance(
    'redis store',
    async () => {
      const { url, drop } = await freshRedisUrl();
      drops.push(drop);
      return openAt(url);
    },
    { durable: true },
  );
});
