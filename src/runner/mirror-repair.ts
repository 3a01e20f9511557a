import { readFile } from 'node:fs/promises';
import type { SessionKey } from '@anthropic-ai/claude-agent-sdk';
import type { TranscriptStore } from '../backends/backend.js';
import type { TranscriptEntry } from '../core/entries.js';
import { localTranscriptPath } from './workspace.js';

export interface RepairResult {
  key: SessionKey;
  /** Entries copied from the local transcript into the store. */
  copied: number;
  /** False when there was no local transcript to copy from. */
  found: boolean;
}

/**
 * After the SDK reported a `mirror_error` (a store append that failed three times, whose batch
 * it then dropped), copies what the store is missing from the CLI's local transcript. Entries
 * with a uuid are matched by uuid, the others by their JSON; the store's appends are
 * idempotent by uuid, so running a repair twice adds nothing.
 */
export async function repairMirror(
  store: TranscriptStore,
  configDir: string,
  key: SessionKey,
): Promise<RepairResult> {
  const file = await localTranscriptPath(configDir, key.sessionId, key.subpath);
  if (file === null) return { key, copied: 0, found: false };
  const local = parseJsonl(await readFile(file, 'utf8'));
  const stored = (await store.load(key)) ?? [];
  const uuids = new Set<string>();
  const others = new Map<string, number>();
  for (const entry of stored) {
    if (typeof entry.uuid === 'string') uuids.add(entry.uuid);
    else bump(others, JSON.stringify(entry));
  }
  const missing: TranscriptEntry[] = [];
  for (const entry of local) {
    if (typeof entry.uuid === 'string') {
      if (!uuids.has(entry.uuid)) missing.push(entry);
      continue;
    }
    // A uuid-less entry (cost-state, title, mode) counts as present as often as the store has it.
    const text = JSON.stringify(entry);
    const left = others.get(text) ?? 0;
    if (left > 0) others.set(text, left - 1);
    else missing.push(entry);
  }
  if (missing.length > 0) await store.append(key, missing);
  return { key, copied: missing.length, found: true };
}

function bump(counts: Map<string, number>, text: string): void {
  counts.set(text, (counts.get(text) ?? 0) + 1);
}

function parseJsonl(text: string): TranscriptEntry[] {
  const entries: TranscriptEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const value: unknown = JSON.parse(line);
      if (value && typeof value === 'object' && !Array.isArray(value)) {
        entries.push(value as TranscriptEntry);
      }
    } catch {
      // A torn last line of a process that died mid-write: nothing to copy from it.
    }
  }
  return entries;
}
