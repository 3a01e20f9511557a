import {
  type ApiKeyRecord,
  type ApiKeyStore,
  identityOfKey,
  parseApiKeyToken,
  secretMatches,
} from '../core/api-keys.js';
import type { Clock } from '../core/clock.js';
import { SessionHubError } from '../core/errors.js';
import type { Identity } from '../core/identity.js';

export interface Caller {
  key: ApiKeyRecord;
  identity: Identity;
}

/**
 * Turns an `Authorization: Bearer` header into the caller it names. Keys are cached for
 * `cacheMs` (default 5 s) so that a busy key costs no backend read per request; a revocation
 * made through another instance takes effect within that time.
 */
export class Authenticator {
  private readonly cache = new Map<string, { key: ApiKeyRecord | null; until: number }>();
  private readonly cacheMs: number;

  constructor(
    private readonly keys: ApiKeyStore,
    private readonly clock: Clock,
    options: { cacheMs?: number } = {},
  ) {
    this.cacheMs = options.cacheMs ?? 5_000;
  }

  async authenticate(header: string | undefined): Promise<Caller> {
    if (!header) {
      throw unauthorized(
        'This API needs an API key: send it as `Authorization: Bearer shk_...`. Create one with `sessionhub keys create`.',
      );
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const parsed = match ? parseApiKeyToken(match[1] as string) : null;
    if (!parsed) {
      throw unauthorized(
        'The Authorization header is not `Bearer shk_<id>_<secret>`. Send the key exactly as `sessionhub keys create` printed it.',
      );
    }
    const key = await this.lookup(parsed.id);
    if (!key || !secretMatches(key, parsed.secret)) {
      throw unauthorized('This API key is not known here. Check it, or create a new one.');
    }
    if (key.revokedAt !== null) {
      throw unauthorized(`API key ${key.id} was revoked. Create a new one.`);
    }
    return { key, identity: identityOfKey(key) };
  }

  /** Forgets cached keys, e.g. after a revocation through this instance. */
  forget(id?: string): void {
    if (id === undefined) this.cache.clear();
    else this.cache.delete(id);
  }

  private async lookup(id: string): Promise<ApiKeyRecord | null> {
    const now = this.clock.now();
    const cached = this.cache.get(id);
    if (cached && cached.until > now) return cached.key;
    const key = await this.keys.get(id);
    // Bounded: unknown ids are cached too (a client retrying a bad key), so cap the map.
    if (this.cache.size >= 10_000) this.cache.clear();
    this.cache.set(id, { key, until: now + this.cacheMs });
    return key;
  }
}

function unauthorized(message: string): SessionHubError {
  return new SessionHubError('UNAUTHORIZED', message, {});
}
