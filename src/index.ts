export type { Backend, TranscriptStore } from './backends/backend.js';
export { createFileBackend, FileLeaseManager, FileTranscriptStore } from './backends/file/index.js';
export {
  createMemoryBackend,
  MemoryLeaseManager,
  MemoryRegistry,
  MemoryTranscriptStore,
} from './backends/memory/index.js';
export { type OpenBackendOptions, openBackend } from './backends/open.js';
export { createPostgresBackend, PostgresLeaseManager } from './backends/postgres/index.js';
export { createRedisBackend, RedisLeaseManager } from './backends/redis/index.js';
export {
  type NewSession,
  type RegistryScope,
  type SessionPatch,
  type SessionRegistry,
  type StatusCounts,
  type StoredSession,
  type SweptSession,
  tenantProjectKey,
} from './backends/registry.js';
export {
  createSqliteBackend,
  type SqliteBackendOptions,
  SqliteLeaseManager,
  SqliteTranscriptStore,
} from './backends/sqlite/index.js';
export {
  type ApiKeyRecord,
  type ApiKeyRole,
  type ApiKeyStore,
  createApiKey,
  type NewApiKey,
} from './core/api-keys.js';
export {
  BACKEND_URL_FORMS,
  type BackendKind,
  type BackendLocation,
  DEFAULT_BACKEND_URL,
  parseBackendUrl,
  redactUrl,
} from './core/backend-url.js';
export { type Clock, ManualClock, systemClock } from './core/clock.js';
export type { DailyUsage, UsageFigures } from './core/daily-usage.js';
export type { TranscriptEntry } from './core/entries.js';
export { ERROR_CODES, type ErrorCode, isSessionHubError, SessionHubError } from './core/errors.js';
export type { ExpiryOverrides, ExpiryPolicy } from './core/expiry.js';
export { type Identity, parseIdentity } from './core/identity.js';
export type {
  AcquireOptions,
  Lease,
  LeaseInfo,
  LeaseManager,
} from './core/lease.js';
export type { LimitName, LimitOverrides, Limits } from './core/limits.js';
export type { SessionKey, SessionRef } from './core/session-key.js';
export type {
  ForkOrigin,
  ListCursor,
  SessionQuery,
  SessionRecord,
  SessionStatus,
} from './core/session-record.js';
export type { ModelUsage, SessionUsage, TokenUsage } from './core/usage.js';
export type { EndedSession, HookName, SessionHooks } from './hub/hooks.js';
export {
  createHub,
  type HubOptions,
  type HubStats,
  type Lineage,
  openHub,
  SessionHub,
  type SessionPage,
  sessionLeaseResource,
  type TurnAdmission,
} from './hub/hub.js';
export type {
  CreateInput,
  ExtendInput,
  ForkInput,
  StatsInput,
  UpdateInput,
} from './hub/inputs.js';
export type { TenantPolicy } from './hub/policies.js';
export { TenantTranscriptStore } from './hub/scoped-store.js';
export { SWEEP_LEASE, type SweepOptions, type SweepResult, type Timers } from './hub/sweeper.js';
export type { AgentOptionName, AgentOptions } from './runner/agent-options.js';
export type { RunnerOptions, SendOptions, StartOptions } from './runner/runner.js';
export type { Turn, TurnEvent, TurnOutcome, TurnStatus } from './runner/turn.js';
