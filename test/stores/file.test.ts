import { afterAll } from 'vitest';
import { describeSessionStoreConformance } from '../../src/testing/index.js';
import { conformanceStores, freshTempUrl } from '../helpers/backends.js';

const stores = conformanceStores(freshTempUrl('file'));
afterAll(() => stores.cleanup());

describeSessionStoreConformance('file store', stores.open, { durable: true });
