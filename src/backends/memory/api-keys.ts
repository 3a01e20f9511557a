import { type ApiKeyRecord, type ApiKeyStore, apiKeyRecordOf } from '../../core/api-keys.js';
import { SessionHubError } from '../../core/errors.js';

/** API keys in process memory: for tests and a service that needs nothing to survive. */
export class MemoryApiKeyStore implements ApiKeyStore {
  private readonly keys = new Map<string, ApiKeyRecord>();

  async insert(key: ApiKeyRecord): Promise<void> {
    if (this.keys.has(key.id)) {
      throw new SessionHubError('INVALID_INPUT', `An API key with id ${key.id} already exists.`, {
        id: key.id,
      });
    }
    this.keys.set(key.id, apiKeyRecordOf(key));
  }

  async get(id: string): Promise<ApiKeyRecord | null> {
    const key = this.keys.get(id);
    return key ? { ...key } : null;
  }

  async list(tenant?: string): Promise<ApiKeyRecord[]> {
    return [...this.keys.values()]
      .filter((key) => tenant === undefined || key.tenant === tenant)
      .sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id))
      .map((key) => ({ ...key }));
  }

  async revoke(id: string, at: number): Promise<ApiKeyRecord | null> {
    const key = this.keys.get(id);
    if (!key) return null;
    key.revokedAt ??= at;
    return { ...key };
  }
}
