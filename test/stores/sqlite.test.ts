import { afterAll } from 'vitest';
import { describeSessionStoreConformance } from '../../src/testing/index.js';
import { conformanceStores, freshTempUrl } from '../helpers/backends.js';

const stores = conformanceStores(freshTempUrl('sqlite'));
afterAll(() => stores.cleanup());

describeSessionStoreConformance('sqlite store', stores.open, { durable: true });
