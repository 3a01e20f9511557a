import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { BackendLocation } from '../../core/backend-url.js';
import type { Clock } from '../../core/clock.js';
import { SessionHubError } from '../../core/errors.js';
import type { Backend } from '../backend.js';
import { FileTranscriptStore, type FileTranscriptStoreOptions } from './transcript-store.js';

export { FileTranscriptStore };

/** A backend that keeps transcripts as JSONL files under one directory, for one process. */
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
  return { kind: 'file', store, close: () => store.close() };
}

export function openFileBackend(
  location: Extract<BackendLocation, { kind: 'file' }>,
  options: { clock?: Clock } = {},
): Promise<Backend> {
  return createFileBackend({ dir: location.dir, fsync: location.fsync, clock: options.clock });
}
