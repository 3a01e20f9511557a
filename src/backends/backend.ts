import type { SessionStore } from '@anthropic-ai/claude-agent-sdk';
import type { BackendKind } from '../core/backend-url.js';

/**
 * An SDK SessionStore with every optional method implemented. Pass it to `query()` as
 * `options.sessionStore`, or to the SDK's session helpers as `{ sessionStore }`.
 */
export type TranscriptStore = SessionStore & Required<SessionStore>;

/** One storage system: today its transcript store; the registry and leases join it later. */
export interface Backend {
  readonly kind: BackendKind;
  /** The transcript store, an SDK SessionStore. */
  readonly store: TranscriptStore;
  /** Releases every connection, file handle and timer the backend opened. Idempotent. */
  close(): Promise<void>;
}
