export type { Backend, TranscriptStore } from './backends/backend.js';
export { createMemoryBackend, MemoryTranscriptStore } from './backends/memory/index.js';
export {
  BACKEND_URL_FORMS,
  type BackendKind,
  type BackendLocation,
  DEFAULT_BACKEND_URL,
  parseBackendUrl,
} from './core/backend-url.js';
export { type Clock, ManualClock, systemClock } from './core/clock.js';
export type { TranscriptEntry } from './core/entries.js';
export { type ErrorCode, isSessionHubError, SessionHubError } from './core/errors.js';
export type { SessionKey, SessionRef } from './core/session-key.js';
