export type { Backend, TranscriptStore } from './backends/backend.js';
export { createFileBackend, FileTranscriptStore } from './backends/file/index.js';
export { createMemoryBackend, MemoryTranscriptStore } from './backends/memory/index.js';
export { type OpenBackendOptions, openBackend } from './backends/open.js';
export { createPostgresBackend } from './backends/postgres/index.js';
export { createRedisBackend } from './backends/redis/index.js';
export {
  createSqliteBackend,
  type SqliteBackendOptions,
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
export type { SessionKey, SessionRef } from './core/session-key.js';
