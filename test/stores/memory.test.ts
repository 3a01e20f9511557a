import { createMemoryBackend } from '../../src/index.js';
import { describeSessionStoreConformance } from '../../src/testing/index.js';

describeSessionStoreConformance('memory store', async () => {
  const backend = createMemoryBackend();
  return { store: backend.store, close: () => backend.close() };
});
