/**
 * The hub's behavioural suite on every backend; the multi-hub races on the backends several
 * processes can share (SQLite file, PostgreSQL, Redis).
 */
import { describe } from 'vitest';
import { openBackend } from '../../src/backends/open.js';
import { describeHubConformance } from '../../src/testing/conformance/hub.js';
import {
  freshPostgresUrl,
  freshRedisUrl,
  freshTempUrl,
  postgresAvailable,
  redisAvailable,
  sharedStorage,
} from '../helpers/backends.js';

type MakeUrl = () => Promise<{ url: string; drop(): Promise<void> }>;

const cases: Array<{ name: string; makeUrl: MakeUrl; shared: boolean }> = [
  {
    name: 'memory',
    makeUrl: async () => ({ url: 'memory:', drop: async () => {} }),
    shared: false,
  },
  { name: 'sqlite', makeUrl: freshTempUrl('sqlite'), shared: true },
  // Several backends of one process on one folder share its state and locks: they can race too.
  { name: 'file', makeUrl: freshTempUrl('file'), shared: true },
];
if (postgresAvailable) cases.push({ name: 'postgres', makeUrl: freshPostgresUrl, shared: true });
if (redisAvailable) cases.push({ name: 'redis', makeUrl: freshRedisUrl, shared: true });

describe.each(cases)('$name', ({ name, makeUrl, shared }) => {
  describeHubConformance(
    name,
    async (clock) => {
      const { url, drop } = await makeUrl();
      return { backend: await openBackend(url, { clock }), cleanup: drop };
    },
    shared
      ? {
          shared: async () => {
            const storage = await sharedStorage(makeUrl);
            return { open: (clock) => storage.open(clock), cleanup: () => storage.close() };
          },
        }
      : {},
  );
});
