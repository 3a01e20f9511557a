import type { SessionRecord } from '../core/session-record.js';
import type { TurnOutcome } from '../runner/turn.js';

/** A session that expired or ended, by tenant and id (a sweep knows no more of it). */
export interface EndedSession {
  tenant: string;
  id: string;
}

/**
 * Calls the hub makes into the application as sessions live and end. Each is awaited, so an
 * application can finish its own bookkeeping first; what one throws never fails the hub's
 * operation (the session was already created, deleted, expired): it goes to `onError`.
 */
export interface SessionHooks {
  /** A session was created: by hub.create, hub.start (before its first turn) or a fork. */
  onSessionStart?(event: {
    session: SessionRecord;
    reason: 'created' | 'forked';
  }): void | Promise<void>;
  /** A turn ended, however it ended; `outcome.session.usage` holds the updated figures. */
  onTurnEnd?(event: { outcome: TurnOutcome }): void | Promise<void>;
  /**
   * A session expired: expired by hub.expire, or marked by a sweep because its deadline passed.
   * A sweep reports each session once, whichever hub marked it.
   */
  onExpiry?(event: { session: EndedSession; reason: 'expired' | 'swept' }): void | Promise<void>;
  /** A session is gone for good, with its transcript: deleted, or purged by a sweep. */
  onSessionEnd?(event: {
    session: EndedSession;
    reason: 'deleted' | 'purged';
  }): void | Promise<void>;
  /** What a hook threw (default: a process warning). */
  onError?(error: unknown, hook: HookName): void;
}

export type HookName = Exclude<keyof SessionHooks, 'onError'>;

/** Runs one hook, if set; what it throws goes to the hooks' onError and never further. */
export async function callHook<Name extends HookName>(
  hooks: SessionHooks | undefined,
  name: Name,
  event: Parameters<NonNullable<SessionHooks[Name]>>[0],
): Promise<void> {
  const hook = hooks?.[name] as ((event: unknown) => void | Promise<void>) | undefined;
  if (!hook) return;
  try {
    await hook.call(hooks, event);
  } catch (error) {
    reportHookError(hooks, name, error);
  }
}

function reportHookError(hooks: SessionHooks | undefined, name: HookName, error: unknown): void {
  if (hooks?.onError) {
    try {
      hooks.onError(error, name);
    } catch {
      // An error handler that throws has nowhere left to report to.
    }
    return;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.emitWarning(`sessionhub hook ${name} threw: ${message}`, {
    code: 'SESSIONHUB_HOOK_ERROR',
  });
}
