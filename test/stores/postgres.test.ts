import { afterAll, describe } from 'vitest';
import { describeSessionStoreConformance } from '../../src/testing/index.js';
import { conformanceStores, freshPostgresUrl, postgresAvailable } from '../helpers/backends.js';

const stores = conformanceStores(freshPostgresUrl);
afterAll(() => stores.cleanup());

// Off CI a missing PostgreSQL skips with instructions; under CI=true the helper throws instead.
describe.skipIf(!postgresAvailable)('postgres', () => {
  describeSessionStoreConformance('postgres store', stores.open, { durable: true });
});
