import { setTimeout as delay } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { type BackendLocation, redactUrl } from '../../core/backend-url.js';
import type { Clock } from '../../core/clock.js';
import { SessionHubError } from '../../core/errors.js';
import type { Backend } from '../backend.js';
import { RedisApiKeyStore } from './api-keys.js';
import { isValidPrefix } from './keys.js';
import { RedisLeaseManager } from './lease-manager.js';
import { RedisRegistry } from './registry.js';
import type { RedisClient } from './scripts.js';
import { RedisTranscriptStore } from './transcript-store.js';

export type { RedisClient };
export { RedisApiKeyStore, RedisLeaseManager, RedisRegistry, RedisTranscriptStore };

export const DEFAULT_REDIS_PREFIX = 'sessionhub';

/** Per connection attempt; a blackholed host must not hang open() for the OS default. */
const CONNECT_TIMEOUT_MS = 2_000;
/** A server that is restarting gets a couple of quick retries; a dead one fails in well under a second. */
const CONNECT_ATTEMPTS = 3;

export interface RedisBackendOptions {
  /** A connected (or lazily connecting) ioredis `Redis` or `Cluster`. */
  client: RedisClient;
  /** Namespace for every key; no braces or whitespace. Default 'sessionhub'. */
  prefix?: string;
  /** Whether backend.close() disconnects `client`. Default false: the caller keeps it. */
  ownsClient?: boolean;
  /**
   * Where lease expiry reads the time (never the server's clock), and the day appends charge
   * daily usage to. Default: the system clock.
   */
  clock?: Clock;
  /**
   * Fold usage from appended entries into the session's figures (default true). Off only to
   * measure what folding costs: records then show no usage.
   */
  foldUsage?: boolean;
}

/**
 * A Redis backend over a client the caller already has. Nothing is registered on the client,
 * and close() leaves it connected unless `ownsClient` is set.
 */
export async function createRedisBackend(options: RedisBackendOptions): Promise<Backend> {
  const client = options?.client as RedisClient | undefined;
  if (typeof client !== 'object' || client === null || typeof client.evalsha !== 'function') {
    throw new SessionHubError(
      'INVALID_OPTION',
      'createRedisBackend() needs { client }: an ioredis Redis or Cluster instance.',
    );
  }
  const prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
  if (!isValidPrefix(prefix)) {
    throw new SessionHubError(
      'INVALID_OPTION',
      `Redis key prefix ${JSON.stringify(prefix)} must be a non-empty string without braces or whitespace (braces would change the Cluster hash tag).`,
      { prefix },
    );
  }
  const store = new RedisTranscriptStore(client, {
    prefix,
    clock: options.clock,
    foldUsage: options.foldUsage,
  });
  const registry = new RedisRegistry(client, prefix, store);
  const leases = new RedisLeaseManager(client, { prefix, clock: options.clock });
  const apiKeys = new RedisApiKeyStore(client, prefix);
  const ownsClient = options.ownsClient ?? false;
  let closing: Promise<void> | undefined;
  return {
    kind: 'redis',
    store,
    registry,
    leases,
    apiKeys,
    close() {
      closing ??= (async () => {
        leases.close();
        apiKeys.close();
        registry.close();
        await store.close();
        if (ownsClient) await quit(client);
      })();
      return closing;
    },
  };
}

/**
 * Opens the Redis a `redis://` or `rediss://` URL names, with its own connection. ioredis is
 * imported here so applications on other backends never load it. Fails fast with
 * BACKEND_UNAVAILABLE when the server cannot be reached.
 */
export async function openRedisBackend(
  location: Extract<BackendLocation, { kind: 'redis' }>,
  options: { clock?: Clock; foldUsage?: boolean } = {},
): Promise<Backend> {
  const { Redis } = await import('ioredis');
  let opening = true;
  let lastError: unknown;
  const client: Redis = new Redis(location.connectionString, {
    lazyConnect: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    // Once open, a command fails after a couple of reconnects instead of queueing for long;
    // the SDK retries a failed append itself.
    maxRetriesPerRequest: 2,
    // While opening we retry by hand (below) so a failure surfaces; afterwards, reconnect.
    retryStrategy: (times) => (opening ? null : Math.min(times * 100, 2_000)),
  });
  // Keeps ioredis from logging "Unhandled error event"; the cause is reported through our errors.
  client.on('error', (error: unknown) => {
    lastError = error;
  });
  for (let attempt = 1; ; attempt++) {
    try {
      await client.connect();
      await client.ping();
      break;
    } catch (error) {
      client.disconnect();
      if (attempt >= CONNECT_ATTEMPTS) throw unavailable(location, lastError ?? error, attempt);
      await delay(100 * attempt);
    }
  }
  opening = false;
  return createRedisBackend({
    client,
    prefix: location.prefix,
    ownsClient: true,
    clock: options.clock,
    foldUsage: options.foldUsage,
  });
}

function unavailable(
  location: Extract<BackendLocation, { kind: 'redis' }>,
  cause: unknown,
  attempts: number,
): SessionHubError {
  const url = redactUrl(location.connectionString);
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new SessionHubError(
    'BACKEND_UNAVAILABLE',
    `Cannot connect to Redis at ${url} (${reason}; ${attempts} attempts). Check that redis-server ` +
      'is running and reachable from this host (host, port, firewall), that the scheme matches the ' +
      'server (rediss:// for TLS), and that the user and password in the URL are right.',
    { url, attempts },
    { cause },
  );
}

/** Closes an owned client; once it resolves the process may exit or reopen at once. */
async function quit(client: RedisClient): Promise<void> {
  if (client.status !== 'ready') {
    // Not connected (or waiting to reconnect): a QUIT would sit in the offline queue, and
    // ioredis emits no 'end' from here, so just stop it.
    client.disconnect();
    return;
  }
  const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
  // QUIT lets replies already in flight arrive before the socket closes.
  await client.quit().catch(() => client.disconnect());
  await ended;
}
