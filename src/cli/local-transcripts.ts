import { readdir, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import type { TranscriptEntry } from '../core/entries.js';
import { SessionHubError } from '../core/errors.js';
import { parseSessionId } from '../hub/inputs.js';

/**
 * The transcripts the Claude Agent SDK (and Claude Code) keep on local disk, found and read
 * without touching any backend:
 *
 *   <configDir>/projects/<projectDir>/<sessionId>.jsonl                          main transcript
 *   <configDir>/projects/<projectDir>/<sessionId>/subagents/<...>/agent-<x>.jsonl  subagents
 *
 * A subagent transcript's store subpath is its path under the session folder without `.jsonl`
 * (`subagents/agent-<x>`), as the SDK itself keys them in a SessionStore.
 */

export interface LocalSubagentTranscript {
  /** The SessionKey subpath, e.g. `subagents/agent-a94`. */
  subpath: string;
  file: string;
}

export interface LocalTranscript {
  /** The file name's UUID, lower-cased as the hub stores ids. */
  sessionId: string;
  /** The project folder's name (the SDK's sanitized cwd). */
  projectDir: string;
  file: string;
  subagents: LocalSubagentTranscript[];
}

/** A file that looked like a transcript but is not imported, and why. */
export interface SkippedFile {
  file: string;
  reason: string;
}

/** Where the SDK keeps its files unless told otherwise. */
export function defaultClaudeConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.CLAUDE_CONFIG_DIR;
  return configured ? configured : path.join(homedir(), '.claude');
}

/**
 * The `projects` folder to read, given either a Claude config dir (the folder holding
 * `projects/`) or the projects folder itself. Throws NOT_FOUND, naming every path tried, when
 * neither is there.
 */
export async function resolveProjectsDir(from: string): Promise<string> {
  const given = path.resolve(expandHome(from));
  const nested = path.join(given, 'projects');
  if (await isDirectory(nested)) return nested;
  if (await isDirectory(given)) return given;
  throw new SessionHubError(
    'NOT_FOUND',
    `No Claude transcripts folder at ${given} (tried ${nested} and ${given}). Point --from at a ` +
      'Claude config dir (the folder holding projects/; default $CLAUDE_CONFIG_DIR or ~/.claude) ' +
      'or at its projects folder.',
    { from, tried: [nested, given] },
  );
}

/**
 * Every main transcript under a projects folder, sorted by project and file name, with its
 * subagent transcripts. Files that are not named `<uuid>.jsonl` are returned as skipped.
 */
export async function findLocalTranscripts(
  projectsDir: string,
): Promise<{ transcripts: LocalTranscript[]; skipped: SkippedFile[] }> {
  const transcripts: LocalTranscript[] = [];
  const skipped: SkippedFile[] = [];
  for (const entry of await sortedEntries(projectsDir)) {
    const entryPath = path.join(projectsDir, entry.name);
    if (!entry.isDirectory()) {
      if (entry.name.endsWith('.jsonl')) {
        skipped.push({
          file: entryPath,
          reason:
            'a transcript directly in the projects folder; the SDK keeps them one level down, in a folder per project',
        });
      }
      continue;
    }
    for (const file of await sortedEntries(entryPath)) {
      if (!file.isFile() || !file.name.endsWith('.jsonl')) continue;
      const filePath = path.join(entryPath, file.name);
      const sessionId = sessionIdOf(file.name.slice(0, -'.jsonl'.length));
      if (sessionId === null) {
        skipped.push({ file: filePath, reason: 'not named <session uuid>.jsonl' });
        continue;
      }
      const sessionDir = filePath.slice(0, -'.jsonl'.length);
      transcripts.push({
        sessionId,
        projectDir: entry.name,
        file: filePath,
        subagents: await findSubagentTranscripts(sessionDir),
      });
    }
  }
  return { transcripts, skipped };
}

/** An error reading a transcript: the file and, for a bad line, its 1-based number. */
export class TranscriptFileError extends Error {
  override readonly name = 'TranscriptFileError';
  constructor(
    readonly file: string,
    readonly line: number | null,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Reads one JSONL transcript into its entries, every line or nothing: a line that is not a JSON
 * object throws a TranscriptFileError naming the file and the line, so a caller never imports
 * part of a session. Blank lines are ignored.
 */
export async function readTranscriptFile(file: string): Promise<TranscriptEntry[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new TranscriptFileError(
      file,
      null,
      `${file}: cannot be read (${(error as Error).message})`,
      {
        cause: error,
      },
    );
  }
  return parseTranscriptText(text, file);
}

/** The pure half of readTranscriptFile, for text already in memory. */
export function parseTranscriptText(text: string, file: string): TranscriptEntry[] {
  const lines = text.split('\n');
  const entries: TranscriptEntry[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      // A last line without its newline is a write cut short: the SDK process crashed, or is
      // still writing this session. Saying so tells the user whether to retry later.
      const torn =
        i === lines.length - 1 ? ' (the last line, without a newline: a write cut short)' : '';
      throw new TranscriptFileError(
        file,
        i + 1,
        `${file}:${i + 1}: not valid JSON${torn}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new TranscriptFileError(file, i + 1, `${file}:${i + 1}: not a JSON object`);
    }
    entries.push(value as TranscriptEntry);
  }
  return entries;
}

async function findSubagentTranscripts(sessionDir: string): Promise<LocalSubagentTranscript[]> {
  const found: LocalSubagentTranscript[] = [];
  // Subagents of subagents sit in nested folders (`subagents/<path>/agent-<x>`): walk them all.
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await sortedEntries(dir)) {
      const entryPath = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(entryPath);
      else if (entry.isFile() && entry.name.endsWith('.jsonl')) {
        const relative = path.relative(sessionDir, entryPath).slice(0, -'.jsonl'.length);
        found.push({ subpath: relative.split(path.sep).join('/'), file: entryPath });
      }
    }
  };
  await walk(path.join(sessionDir, 'subagents'));
  return found;
}

function sessionIdOf(name: string): string | null {
  try {
    return parseSessionId(name);
  } catch {
    return null;
  }
}

/** A folder's entries by name; none when it does not exist. */
async function sortedEntries(dir: string) {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

async function isDirectory(dir: string): Promise<boolean> {
  try {
    return (await stat(dir)).isDirectory();
  } catch {
    return false;
  }
}

/** `~/x` from a flag written as `--from=~/x`, which the shell leaves unexpanded. */
function expandHome(dir: string): string {
  if (dir === '~') return homedir();
  if (dir.startsWith('~/')) return path.join(homedir(), dir.slice(2));
  return dir;
}
