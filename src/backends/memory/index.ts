import type { Clock } from '../../core/clock.js';
import type { Backend } from '../backend.js';
import { MemoryApiKeyStore } from './api-keys.js';
import { MemoryLeaseManager } from './lease-manager.js';
import { MemoryRegistry } from './registry.js';
import { MemoryData, MemoryTranscriptStore } from './transcript-store.js';

export { MemoryApiKeyStore, MemoryLeaseManager, MemoryRegistry, MemoryTranscriptStore };

export interface MemoryBackendOptions {
  clock?: Clock;
  /** Fold usage from appended entries (default true); off only to measure what folding costs. */
  foldUsage?: boolean;
}

/** A backend that lives in process memory and forgets everything on exit. */
export function createMemoryBackend(options: MemoryBackendOptions = {}): Backend {
  const data = new MemoryData();
  const store = new MemoryTranscriptStore({ ...options, data });
  return {
    kind: 'memory',
    store,
    registry: new MemoryRegistry(data),
    leases: new MemoryLeaseManager(options),
    apiKeys: new MemoryApiKeyStore(),
    async close() {},
  };
}
