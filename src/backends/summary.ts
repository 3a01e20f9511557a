import { foldSessionSummary, type SessionSummaryEntry } from '@anthropic-ai/claude-agent-sdk';
import type { TranscriptEntry } from '../core/entries.js';
import type { SessionKey } from '../core/session-key.js';

export type { SessionSummaryEntry };

/**
 * Folds newly stored main-transcript entries into a session's summary with the SDK's own fold,
 * stamped with the same mtime the store reports from listSessions(). Subagent transcripts do not
 * feed the summary (the SDK's reference store does the same).
 */
export function foldSummary(
  previous: SessionSummaryEntry | undefined,
  key: SessionKey,
  entries: TranscriptEntry[],
  mtime: number,
): SessionSummaryEntry {
  return foldSessionSummary(previous, key, entries, { mtime });
}
