import type { SessionStore } from '@anthropic-ai/claude-agent-sdk';
import type { ApiKeyStore } from '../core/api-keys.js';
import type { BackendKind } from '../core/backend-url.js';
import type { LeaseManager } from '../core/lease.js';
import type { SessionRegistry } from './registry.js';

/**
 * An SDK SessionStore with every optional method implemented. Pass it to `query()` as
 * `options.sessionStore`, or to the SDK's session helpers as `{ sessionStore }`.
 */
export type TranscriptStore = SessionStore & Required<SessionStore>;

/** One storage system: its transcripts, the session registry beside them, and leases. */
export interface Backend {
  readonly kind: BackendKind;
  /** The transcript store, an SDK SessionStore. */
  readonly store: TranscriptStore;
  /** Session records, stored with the transcripts; the hub's lifecycle runs on it. */
  readonly registry: SessionRegistry;
  /** One holder at a time per resource (a session), across every process on this backend. */
  readonly leases: LeaseManager;
  /** The HTTP service's API keys, shared by every service instance on this backend. */
  readonly apiKeys: ApiKeyStore;
  /** Releases every connection, file handle and timer the backend opened. Idempotent. */
  close(): Promise<void>;
}
