import type { Clock } from '../../core/clock.js';
import type { Backend } from '../backend.js';
import { MemoryLeaseManager } from './lease-manager.js';
import { MemoryTranscriptStore } from './transcript-store.js';

export { MemoryLeaseManager, MemoryTranscriptStore };

/** A backend that lives in process memory and forgets everything on exit. */
export function createMemoryBackend(options: { clock?: Clock } = {}): Backend {
  const store = new MemoryTranscriptStore(options);
  return {
    kind: 'memory',
    store,
    leases: new MemoryLeaseManager(options),
    async close() {},
  };
}
