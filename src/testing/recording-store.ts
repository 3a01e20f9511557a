import type {
  SessionKey,
  SessionStore,
  SessionStoreEntry,
  SessionSummaryEntry,
} from '@anthropic-ai/claude-agent-sdk';

/** One call a RecordingStore saw, with deep copies of what it was given. */
export type RecordedCall =
  | { method: 'append'; key: SessionKey; entries: SessionStoreEntry[] }
  | { method: 'load' | 'delete'; key: SessionKey }
  | { method: 'listSessions' | 'listSessionSummaries'; projectKey: string }
  | { method: 'listSubkeys'; key: { projectKey: string; sessionId: string } };

/**
 * A SessionStore that records every call the SDK makes (deep-copied, in call order) and hands it
 * on to another store. For tests and benchmarks: what batches does a turn append, does a resume
 * ask for subagent transcripts, and so on.
 */
export class RecordingStore implements SessionStore, Required<SessionStore> {
  readonly calls: RecordedCall[] = [];

  constructor(private readonly inner: SessionStore & Required<SessionStore>) {}

  /** The append calls, optionally only those of one session's main transcript. */
  appends(sessionId?: string): Array<{ key: SessionKey; entries: SessionStoreEntry[] }> {
    return this.calls.flatMap((call) =>
      call.method === 'append' &&
      (sessionId === undefined || (call.key.sessionId === sessionId && !call.key.subpath))
        ? [{ key: call.key, entries: call.entries }]
        : [],
    );
  }

  async append(key: SessionKey, entries: SessionStoreEntry[]): Promise<void> {
    this.calls.push({
      method: 'append',
      key: structuredClone(key),
      entries: structuredClone(entries),
    });
    await this.inner.append(key, entries);
  }

  load(key: SessionKey): Promise<SessionStoreEntry[] | null> {
    this.calls.push({ method: 'load', key: structuredClone(key) });
    return this.inner.load(key);
  }

  listSessions(projectKey: string): Promise<Array<{ sessionId: string; mtime: number }>> {
    this.calls.push({ method: 'listSessions', projectKey });
    return this.inner.listSessions(projectKey);
  }

  listSessionSummaries(projectKey: string): Promise<SessionSummaryEntry[]> {
    this.calls.push({ method: 'listSessionSummaries', projectKey });
    return this.inner.listSessionSummaries(projectKey);
  }

  delete(key: SessionKey): Promise<void> {
    this.calls.push({ method: 'delete', key: structuredClone(key) });
    return this.inner.delete(key);
  }

  listSubkeys(key: { projectKey: string; sessionId: string }): Promise<string[]> {
    this.calls.push({ method: 'listSubkeys', key: structuredClone(key) });
    return this.inner.listSubkeys(key);
  }
}
