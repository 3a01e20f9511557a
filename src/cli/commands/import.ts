import { isDeepStrictEqual } from 'node:util';
import type { SessionKey } from '@anthropic-ai/claude-agent-sdk';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import type { TranscriptStore } from '../../backends/backend.js';
import { tenantProjectKey } from '../../backends/registry.js';
import type { TranscriptEntry } from '../../core/entries.js';
import { isSessionHubError } from '../../core/errors.js';
import type { Identity } from '../../core/identity.js';
import type { SessionHub } from '../../hub/hub.js';
import { parseCreateInput } from '../../hub/inputs.js';
import { type BackendFlags, withOperatorHub } from '../context.js';
import {
  defaultClaudeConfigDir,
  findLocalTranscripts,
  type LocalTranscript,
  readTranscriptFile,
  resolveProjectsDir,
  type SkippedFile,
  TranscriptFileError,
} from '../local-transcripts.js';
import { consoleOutput, EXIT, type Output } from '../output.js';

/**
 * `sessionhub sessions import`: local SDK / Claude Code transcripts into the configured backend.
 * Each session is imported whole or not at all: its entries are appended (main and subagent
 * transcripts), then the record is registered, which adopts the transcript and folds its usage;
 * if anything fails on the way, what was appended is removed again.
 */

export interface ImportOptions {
  /** The projects folder (see resolveProjectsDir). */
  projectsDir: string;
  /** Whose sessions they become. */
  owner: string;
  /** Read and check everything, write nothing. */
  dryRun?: boolean;
  /** Entries per store append; default 500. */
  batchSize?: number;
  onProgress?: (progress: ImportProgress) => void;
}

export interface ImportProgress {
  /** Sessions looked at so far, of `total`. */
  done: number;
  total: number;
  imported: number;
  alreadyThere: number;
  failed: number;
}

export interface ImportFailure {
  sessionId: string;
  file: string;
  /** The bad line of a corrupt transcript (1-based), if that was the problem. */
  line: number | null;
  reason: string;
}

export interface ImportSummary {
  projectsDir: string;
  tenant: string;
  owner: string;
  dryRun: boolean;
  /** Main transcripts found. */
  found: number;
  /** Sessions imported (with dryRun: that would be). */
  imported: number;
  /** Entries of the imported sessions, main and subagent transcripts together. */
  entries: number;
  /** Sessions already registered in the tenant, left as they are. */
  alreadyThere: number;
  failed: ImportFailure[];
  /** Files not imported because they are not named as transcripts are. */
  skipped: SkippedFile[];
}

const DEFAULT_BATCH_SIZE = 500;
/**
 * A batch is cut early at this many characters of JSON: a few entries (request blobs, large tool
 * results) can be megabytes each, and one append should stay well inside what a backend takes.
 */
const MAX_BATCH_CHARS = 8 * 1024 * 1024;

type Outcome =
  | { kind: 'imported'; entries: number }
  | { kind: 'alreadyThere' }
  | { kind: 'failed'; failure: ImportFailure };

/** Imports every local transcript under `options.projectsDir` into the admin's tenant. */
export async function importTranscripts(
  hub: SessionHub,
  admin: Identity,
  options: ImportOptions,
): Promise<ImportSummary> {
  const { transcripts, skipped } = await findLocalTranscripts(options.projectsDir);
  const summary: ImportSummary = {
    projectsDir: options.projectsDir,
    tenant: admin.tenant,
    owner: options.owner,
    dryRun: options.dryRun === true,
    found: transcripts.length,
    imported: 0,
    entries: 0,
    alreadyThere: 0,
    failed: [],
    skipped,
  };
  const filesById = new Map<string, string[]>();
  for (const transcript of transcripts) {
    filesById.set(transcript.sessionId, [
      ...(filesById.get(transcript.sessionId) ?? []),
      transcript.file,
    ]);
  }
  const report = (done: number) =>
    options.onProgress?.({
      done,
      total: transcripts.length,
      imported: summary.imported,
      alreadyThere: summary.alreadyThere,
      failed: summary.failed.length,
    });
  report(0);
  for (const [i, transcript] of transcripts.entries()) {
    const files = filesById.get(transcript.sessionId) ?? [];
    const outcome =
      files.length > 1
        ? failure(
            transcript,
            `the same session id is in ${files.length} project folders (${files.join(', ')}); ` +
              'keep the one to import and move the others out of --from',
          )
        : await importOne(hub, admin, transcript, options);
    if (outcome.kind === 'imported') {
      summary.imported++;
      summary.entries += outcome.entries;
    } else if (outcome.kind === 'alreadyThere') {
      summary.alreadyThere++;
    } else {
      summary.failed.push(outcome.failure);
    }
    report(i + 1);
  }
  return summary;
}

async function importOne(
  hub: SessionHub,
  admin: Identity,
  transcript: LocalTranscript,
  options: ImportOptions,
): Promise<Outcome> {
  const store = hub.backend.store;
  const main: SessionKey = {
    projectKey: tenantProjectKey(admin.tenant),
    sessionId: transcript.sessionId,
  };
  try {
    if (await hub.backend.registry.get(admin.tenant, transcript.sessionId)) {
      return { kind: 'alreadyThere' };
    }
    // Every file is read before anything is written, so a corrupt subagent transcript leaves
    // the session out entirely.
    const parts: TranscriptPart[] = [
      { key: main, entries: await readTranscriptFile(transcript.file) },
    ];
    for (const subagent of transcript.subagents) {
      parts.push({
        key: { ...main, subpath: subagent.subpath },
        entries: await readTranscriptFile(subagent.file),
      });
    }
    const entries = parts.reduce((sum, part) => sum + part.entries.length, 0);
    const stored = await storedPrefixes(store, main, parts);
    if (typeof stored === 'string') return failure(transcript, stored);
    if (options.dryRun) return { kind: 'imported', entries };
    try {
      for (const [i, part] of parts.entries()) {
        await appendInBatches(
          store,
          part.key,
          part.entries.slice(stored[i]),
          options.batchSize ?? DEFAULT_BATCH_SIZE,
        );
      }
      await hub.create(admin, { id: transcript.sessionId, owner: options.owner });
    } catch (error) {
      // Another import registered the same id meanwhile: the transcript is theirs now too.
      if (isSessionHubError(error, 'SESSION_EXISTS')) return { kind: 'alreadyThere' };
      const undo = await store.delete(main).then(
        () => '',
        (undoError: unknown) =>
          `; removing its partly imported transcript failed too (${(undoError as Error).message})`,
      );
      if (stopsTheImport(error)) throw error;
      return failure(transcript, `${(error as Error).message}${undo}`);
    }
    return { kind: 'imported', entries };
  } catch (error) {
    if (stopsTheImport(error)) throw error;
    if (error instanceof TranscriptFileError) {
      return failure(transcript, error.message, error);
    }
    return failure(transcript, (error as Error).message);
  }
}

interface TranscriptPart {
  key: SessionKey;
  entries: TranscriptEntry[];
}

/**
 * How many entries of each part the store already holds, or why its copy rules the import out.
 * An unregistered transcript already stored under the id is a prefix of the local files when an
 * earlier import stopped between its appends and its registration: only the rest is appended.
 * Anything else was written by someone else and is left untouched.
 */
async function storedPrefixes(
  store: TranscriptStore,
  main: SessionKey,
  parts: TranscriptPart[],
): Promise<number[] | string> {
  const localSubpaths = new Set(parts.map((part) => part.key.subpath));
  const strangers = (await store.listSubkeys(main)).filter((sub) => !localSubpaths.has(sub));
  const lengths: number[] = [];
  for (const part of parts) {
    const stored = (await store.load(part.key)) ?? [];
    const prefix =
      stored.length <= part.entries.length &&
      stored.every((entry, i) => isDeepStrictEqual(entry, part.entries[i]));
    if (!prefix) strangers.push(part.key.subpath ?? 'the main transcript');
    lengths.push(stored.length);
  }
  if (strangers.length === 0) return lengths;
  return (
    `the backend already stores a different transcript under this id (${strangers.join(', ')}) ` +
    'with no session registered for it; it is left untouched'
  );
}

/** Errors about the backend rather than one session: the import stops instead of failing each. */
function stopsTheImport(error: unknown): boolean {
  return (
    isSessionHubError(error, 'BACKEND_UNAVAILABLE') ||
    isSessionHubError(error, 'CLOSED') ||
    isSessionHubError(error, 'SCHEMA_TOO_NEW')
  );
}

async function appendInBatches(
  store: TranscriptStore,
  key: SessionKey,
  entries: TranscriptEntry[],
  batchSize: number,
): Promise<void> {
  let batch: TranscriptEntry[] = [];
  let chars = 0;
  for (const entry of entries) {
    const size = JSON.stringify(entry).length;
    if (batch.length > 0 && (batch.length >= batchSize || chars + size > MAX_BATCH_CHARS)) {
      await store.append(key, batch);
      batch = [];
      chars = 0;
    }
    batch.push(entry);
    chars += size;
  }
  if (batch.length > 0) await store.append(key, batch);
}

function failure(
  transcript: LocalTranscript,
  reason: string,
  fileError?: TranscriptFileError,
): Outcome {
  return {
    kind: 'failed',
    failure: {
      sessionId: transcript.sessionId,
      file: fileError?.file ?? transcript.file,
      line: fileError?.line ?? null,
      reason,
    },
  };
}

// ---- the command ----

export interface ImportFlags extends BackendFlags {
  from?: string;
  owner: string;
  dryRun?: boolean;
  json?: boolean;
}

/**
 * The command's work, for a caller that has the flags: prints the summary (and a progress bar on
 * a terminal) and returns the exit code: 0 when every session was imported or already there, 1
 * when some failed. A missing --from throws NOT_FOUND before any backend is opened.
 */
export async function runImport(
  flags: ImportFlags,
  output: Output,
  progressStream: NodeJS.WriteStream = process.stderr,
): Promise<number> {
  // An invalid owner would fail every session one by one; refuse it once, up front.
  parseCreateInput({ owner: flags.owner });
  const projectsDir = await resolveProjectsDir(flags.from ?? defaultClaudeConfigDir());
  const bar =
    progressStream.isTTY && !output.json
      ? new cliProgress.SingleBar(
          {
            format:
              '{bar} {value}/{total} sessions | {imported} imported, {alreadyThere} already there, {failed} failed',
            stream: progressStream,
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
  let summary: ImportSummary;
  try {
    summary = await withOperatorHub(flags, (hub, admin) =>
      importTranscripts(hub, admin, {
        projectsDir,
        owner: flags.owner,
        dryRun: flags.dryRun === true,
        onProgress: bar
          ? ({ done, total, ...counts }) => {
              if (done === 0) bar.start(total, 0, counts);
              else bar.update(done, counts);
            }
          : undefined,
      }),
    );
  } finally {
    bar?.stop();
  }
  output.out(output.json ? JSON.stringify(summary, null, 2) : describeSummary(summary));
  return summary.failed.length > 0 ? EXIT.error : EXIT.ok;
}

export function describeSummary(summary: ImportSummary): string {
  const lines = [
    `${summary.dryRun ? 'would import' : 'imported'} ${summary.imported} sessions ` +
      `(${summary.entries} entries), skipped ${summary.alreadyThere} already there, ` +
      `${summary.failed.length} failed`,
    `  from ${summary.projectsDir} (${summary.found} transcripts) into tenant ` +
      `${summary.tenant} as owner ${summary.owner}`,
  ];
  for (const failed of summary.failed) lines.push(`failed ${failed.sessionId}: ${failed.reason}`);
  for (const skipped of summary.skipped) lines.push(`skipped ${skipped.file}: ${skipped.reason}`);
  if (summary.dryRun) lines.push('dry run: nothing was written');
  return lines.join('\n');
}

/** Registers `sessions import` on the `sessions` command. */
export function importCommand(sessions: Command): Command {
  return sessions
    .command('import')
    .description(
      'bring local Claude Code / Agent SDK transcripts (~/.claude/projects) into the backend',
    )
    .requiredOption('--owner <owner>', 'whose sessions they become')
    .option(
      '--from <dir>',
      'a Claude config dir or its projects folder (default: $CLAUDE_CONFIG_DIR or ~/.claude)',
    )
    .option('--dry-run', 'count what would be imported; write nothing')
    .option('--tenant <tenant>', 'the tenant to import into, as its admin', 'default')
    .option('--db <url>', 'backend URL (SESSIONHUB_DB)')
    .option('--config <file>', 'configuration file')
    .option('--json', 'print the summary as JSON')
    .action(async (options: ImportFlags) => {
      const code = await runImport(options, consoleOutput(Boolean(options.json)));
      // main() must keep a non-zero code set here: some sessions failed, the rest were imported.
      if (code !== EXIT.ok) process.exitCode = code;
    });
}
