import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { BackendLocation } from '../../core/backend-url.js';
import type { Clock } from '../../core/clock.js';
import { SessionHubError } from '../../core/errors.js';
import type { Backend } from '../backend.js';
import { FileApiKeyStore } from './api-keys.js';
import { FileFolder } from './folder.js';
import { FileLeaseManager } from './lease-manager.js';
import { FileRegistry } from './registry.js';
import { FileTranscriptStore, type FileTranscriptStoreOptions } from './transcript-store.js';

export { FileApiKeyStore, FileLeaseManager, FileRegistry, FileTranscriptStore };
export type FileBackendOptions = FileTranscriptStoreOptions;

/**
 * A backend that keeps transcripts, session records and daily usage as JSONL files under one
 * directory, for one process. Every backend this process opens on the directory shares one view
 * of it (caches, locks, leases), so they never contradict each other; another process would.
 * Its leases are held in this process's memory (fences persist in the directory).
 */
export async function createFileBackend(options: FileBackendOptions): Promise<Backend> {
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
  const folder = await FileFolder.open(options.dir, options.fsync ?? false);
  let leases: FileLeaseManager;
  try {
    leases = await FileLeaseManager.open(options);
  } catch (error) {
    await folder.release();
    throw error;
  }
  const store = new FileTranscriptStore(options, folder);
  const registry = new FileRegistry(folder);
  // Reads the disk on every call rather than the folder's caches: the CLI adds keys from another
  // process while the service runs.
  const apiKeys = new FileApiKeyStore(folder.root, () => folder.fsync);
  let closing: Promise<void> | undefined;
  return {
    kind: 'file',
    store,
    registry,
    leases,
    apiKeys,
    close() {
      closing ??= (async () => {
        apiKeys.close();
        registry.close();
        await store.close();
        await leases.close();
        await folder.release();
      })();
      return closing;
    },
  };
}

export function openFileBackend(
  location: Extract<BackendLocation, { kind: 'file' }>,
  options: { clock?: Clock; foldUsage?: boolean } = {},
): Promise<Backend> {
  return createFileBackend({
    dir: location.dir,
    fsync: location.fsync,
    clock: options.clock,
    foldUsage: options.foldUsage,
  });
}
