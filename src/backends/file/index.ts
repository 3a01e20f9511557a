import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { BackendLocation } from '../../core/backend-url.js';
import type { Clock } from '../../core/clock.js';
import { SessionHubError } from '../../core/errors.js';
import type { Backend } from '../backend.js';
import { FileLeaseManager } from './lease-manager.js';
import { FileTranscriptStore, type FileTranscriptStoreOptions } from './transcript-store.js';

export { FileLeaseManager, FileTranscriptStore };

/**
 * A backend that keeps transcripts as JSONL files under one directory, for one process. Its
 * leases are held in this process's memory (fences persist in the directory), so they keep
 * other backends of this process off a session, never another process.
 */
export async function createFileBackend(options: FileTranscriptStoreOptions): Promise<Backend> {
  try {
    await mkdir(path.resolve(options.dir), { recursive: true });
  } catch (error) {
    throw new SessionHubError(
      'BACKEND_UNAVAILABLE',
      `Cannot create the transcript directory ${options.dir}: ${(error as Error).message}. Choose a writable directory.`,
      { dir: options.dir },
      { cause: error },
    );
  }
  const store = new FileTranscriptStore(options);
  const leases = await FileLeaseManager.open(options);
  return {
    kind: 'file',
    store,
    leases,
    async close() {
      await store.close();
      await leases.close();
    },
  };
}

export function openFileBackend(
  location: Extract<BackendLocation, { kind: 'file' }>,
  options: { clock?: Clock } = {},
): Promise<Backend> {
  return createFileBackend({ dir: location.dir, fsync: location.fsync, clock: options.clock });
}
