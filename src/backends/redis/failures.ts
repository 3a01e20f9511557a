import { SessionHubError } from '../../core/errors.js';

/**
 * Passes our own errors through and turns driver and server failures into BACKEND_UNAVAILABLE,
 * with a message that says what to check. `what` names the operation, e.g. "Redis load()".
 */
export function guardRedis<T>(what: string, operation: string, pending: Promise<T>): Promise<T> {
  return pending.catch((error: unknown) => {
    if (error instanceof SessionHubError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new SessionHubError(
      'BACKEND_UNAVAILABLE',
      `${what} failed: ${reason}. Check that the Redis server is up and reachable, ` +
        'that it is not out of memory (maxmemory), and that this user may run EVALSHA/EVAL.',
      { operation },
      { cause: error },
    );
  });
}
