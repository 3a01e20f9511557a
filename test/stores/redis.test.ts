import { afterAll, describe } from 'vitest';
import { describeSessionStoreConformance } from '../../src/testing/index.js';
import { conformanceStores, freshRedisUrl, redisAvailable } from '../helpers/backends.js';

const stores = conformanceStores(freshRedisUrl);
afterAll(() => stores.cleanup());

// Off CI a missing Redis skips with instructions; under CI=true the helper throws instead.
describe.skipIf(!redisAvailable)('redis', () => {
  describeSessionStoreConformance('redis store', stores.open, { durable: true });
});
