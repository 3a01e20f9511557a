export type { Backend, TranscriptStore } from './backends/backend.js';
export { createFileBackend, FileLeaseManager, FileTranscriptStore } from './backends/file/index.js';
export {
  createMemoryBackend,
  MemoryLeaseManager,
  MemoryTranscriptStore,
} from './backends/memory/index.js';
export { type OpenBackendOptions, openBackend } from './backends/open.js';
export { createPostgresBackend, PostgresLeaseManager } from './backends/postgres/index.js';
export { createRedisBackend, RedisLeaseManager } from './backends/redis/index.js';
export {
  createSqliteBackend,
  type SqliteBackendOptions,
  SqliteLeaseManager,
  SqliteTranscriptStore,
} from './backends/sqlite/index.js';
export {
  BACKEND_URL_FORMS,
  type BackendKind,
  type BackendLocation,
  DEFAULT_BACKEND_URL,
  parseBackendUrl,
  redactUrl,
} from './core/backend-url.js';
export { type Clock, ManualClock, systemClock } from './core/clock.js';
export type { TranscriptEntry } from './core/entries.js';
export { ERROR_CODES, type ErrorCode, isSessionHubError, SessionHubError } from './core/errors.js';
export type {
  AcquireOptions,
  Lease,
  LeaseInfo,
  LeaseManager,
} from './core/lease.js';
export type { SessionKey, SessionRef } from './core/session-key.js';
