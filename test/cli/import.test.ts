/**
 * `sessionhub sessions import` on genuine SDK files: the real Agent SDK (its bundled CLI against
 * the mock API) writes transcripts to a temporary CLAUDE_CONFIG_DIR, one of them with a subagent
 * transcript, and the import brings them into a SQLite file backend.
 */
import { cp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { openBackend } from '../../src/backends/open.js';
import { tenantProjectKey } from '../../src/backends/registry.js';
import {
  type ImportSummary,
  importCommand,
  importTranscripts,
  runImport,
} from '../../src/cli/commands/import.js';
import { withOperatorHub } from '../../src/cli/context.js';
import {
  findLocalTranscripts,
  parseTranscriptText,
  readTranscriptFile,
  resolveProjectsDir,
  TranscriptFileError,
} from '../../src/cli/local-transcripts.js';
import type { Output } from '../../src/cli/output.js';
import type { TranscriptEntry } from '../../src/core/entries.js';
import type { Identity } from '../../src/core/identity.js';
import { createHub } from '../../src/hub/hub.js';
import { type MockAnthropic, startMockAnthropic } from '../../src/testing/mock-anthropic/index.js';
import { runTurn, TempDirs, type TurnResult } from '../helpers/sdk.js';
import { thrown } from '../helpers/thrown.js';

const TENANT = 'acme';
const admin: Identity = { tenant: TENANT, admin: true };
const dirs = new TempDirs();
let mock: MockAnthropic;

/** The SDK-written config dir, never modified; tests that damage files work on a copy. */
let configDir: string;
/** Two turns, the first delegating to a subagent. */
let delegating: { first: TurnResult; second: TurnResult; file: string; subagentFile: string };
/** One plain turn, in another working directory (another project folder). */
let plain: { turn: TurnResult; file: string };

beforeAll(async () => {
  mock = await startMockAnthropic();
  configDir = await dirs.make('import-claude');
  const cwdA = await dirs.make('import-cwd-a');
  const cwdB = await dirs.make('import-cwd-b');
  mock.enqueue({
    content: [
      {
        type: 'tool_use',
        name: 'Task',
        input: {
          description: 'greet',
          prompt: 'Say hi from the subagent',
          subagent_type: 'general-purpose',
        },
      },
    ],
  });
  const first = await runTurn({
    mock,
    prompt: 'Delegate a greeting',
    cwd: cwdA,
    configDir,
    options: { allowedTools: ['Task'] },
  });
  const second = await runTurn({
    mock,
    prompt: 'Thanks',
    cwd: cwdA,
    configDir,
    options: { resume: first.sessionId },
  });
  const turn = await runTurn({ mock, prompt: 'Hello', cwd: cwdB, configDir });

  const { transcripts } = await findLocalTranscripts(path.join(configDir, 'projects'));
  const a = transcripts.find((t) => t.sessionId === first.sessionId);
  const b = transcripts.find((t) => t.sessionId === turn.sessionId);
  if (!a || !b || a.subagents.length !== 1) {
    throw new Error(`the SDK did not write the expected files: ${JSON.stringify(transcripts)}`);
  }
  delegating = { first, second, file: a.file, subagentFile: a.subagents[0]?.file as string };
  plain = { turn, file: b.file };
}, 120_000);

afterAll(async () => {
  await mock?.close();
  await dirs.cleanup();
});

afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

/** A file's entries as the test reads them, independently of the import's reader. */
async function fileEntries(file: string): Promise<TranscriptEntry[]> {
  const text = await readFile(file, 'utf8');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as TranscriptEntry);
}

function keyOf(sessionId: string, subpath?: string) {
  return { projectKey: tenantProjectKey(TENANT), sessionId, ...(subpath ? { subpath } : {}) };
}

async function freshDb(): Promise<string> {
  return `sqlite:${path.join(await dirs.make('import-db'), 'hub.db')}`;
}

/** A copy of the SDK's config dir that a test may damage. */
async function copyOfConfigDir(): Promise<string> {
  const copy = await dirs.make('import-copy');
  await cp(configDir, copy, { recursive: true });
  return copy;
}

function inCopy(copy: string, file: string): string {
  return path.join(copy, path.relative(configDir, file));
}

async function importInto(
  db: string,
  from: string,
  options: { owner?: string; dryRun?: boolean } = {},
): Promise<ImportSummary> {
  return withOperatorHub({ db, tenant: TENANT }, async (hub, identity) =>
    importTranscripts(hub, identity, {
      projectsDir: await resolveProjectsDir(from),
      owner: options.owner ?? 'alice',
      dryRun: options.dryRun,
    }),
  );
}

/** Everything the backend holds of a session: its record and its transcripts. */
async function storedOf(db: string, sessionId: string) {
  const backend = await openBackend(db);
  try {
    return {
      record: await backend.registry.get(TENANT, sessionId),
      main: await backend.store.load(keyOf(sessionId)),
      subkeys: await backend.store.listSubkeys(keyOf(sessionId)),
    };
  } finally {
    await backend.close();
  }
}

describe('local transcripts', () => {
  test('are found per project folder with their subagent transcripts under a subpath', async () => {
    const { transcripts, skipped } = await findLocalTranscripts(path.join(configDir, 'projects'));
    expect(transcripts.map((t) => t.sessionId).sort()).toEqual(
      [delegating.first.sessionId, plain.turn.sessionId].sort(),
    );
    const a = transcripts.find((t) => t.sessionId === delegating.first.sessionId);
    expect(a?.subagents).toEqual([
      { subpath: expect.stringMatching(/^subagents\/agent-[^/]+$/), file: delegating.subagentFile },
    ]);
    expect(skipped).toEqual([]);
  });

  test('are read whole, or refused naming the file and the line', async () => {
    expect(await readTranscriptFile(plain.file)).toEqual(await fileEntries(plain.file));
    expect(parseTranscriptText('{"type":"a"}\n\n  \n{"type":"b"}\n', 'f.jsonl')).toEqual([
      { type: 'a' },
      { type: 'b' },
    ]);
    const corrupt = thrown(() =>
      parseTranscriptText('{"type":"a"}\n{"type":\n{"type":"c"}\n', 'f'),
    );
    expect(corrupt).toBeInstanceOf(TranscriptFileError);
    expect(corrupt).toMatchObject({ file: 'f', line: 2, message: expect.stringMatching(/^f:2: /) });
    const torn = thrown(() => parseTranscriptText('{"type":"a"}\n{"type":"b', 'f'));
    expect(torn).toMatchObject({ line: 2, message: expect.stringContaining('cut short') });
    expect(thrown(() => parseTranscriptText('{"type":"a"}\n[1,2]\n', 'f'))).toMatchObject({
      line: 2,
      message: 'f:2: not a JSON object',
    });
  });

  test('--from takes the config dir or its projects folder; a missing one is NOT_FOUND', async () => {
    const projects = path.join(configDir, 'projects');
    expect(await resolveProjectsDir(configDir)).toBe(projects);
    expect(await resolveProjectsDir(projects)).toBe(projects);
    const missing = path.join(configDir, 'no-such-dir');
    const error = await resolveProjectsDir(missing).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringContaining(missing),
      details: { tried: [path.join(missing, 'projects'), missing] },
    });
    expect((error as Error).message).toContain('--from');
  });
});

describe('sessions import', () => {
  test('registers every session with its owner, its transcripts as written and its usage; a second run skips them all', async () => {
    const db = await freshDb();
    const summary = await importInto(db, configDir, { owner: 'alice' });
    const files = [delegating.file, delegating.subagentFile, plain.file];
    const allEntries = (await Promise.all(files.map(fileEntries))).flat();
    expect(summary).toMatchObject({
      found: 2,
      imported: 2,
      entries: allEntries.length,
      alreadyThere: 0,
      failed: [],
      dryRun: false,
    });

    const a = await storedOf(db, delegating.first.sessionId);
    expect(a.record).toMatchObject({ owner: 'alice', tenant: TENANT, status: 'active' });
    expect(a.main).toEqual(await fileEntries(delegating.file));
    expect(a.subkeys).toHaveLength(1);
    const backend = await openBackend(db);
    try {
      const subEntries = await backend.store.load(keyOf(delegating.first.sessionId, a.subkeys[0]));
      expect(subEntries).toEqual(await fileEntries(delegating.subagentFile));
    } finally {
      await backend.close();
    }
    expect((await storedOf(db, plain.turn.sessionId)).main).toEqual(await fileEntries(plain.file));

    // The records' usage is folded from the imported transcripts: the SDK's own figures.
    await withOperatorHub({ db, tenant: TENANT }, async (hub) => {
      const sessionA = await hub.get(admin, delegating.first.sessionId);
      expect(sessionA.usage.turns).toBe(2);
      expect(sessionA.usage.costUsd).toBeGreaterThan(0);
      expect(sessionA.usage.costUsd).toBeCloseTo(delegating.second.result.total_cost_usd, 9);
      const sessionB = await hub.get(admin, plain.turn.sessionId);
      expect(sessionB.owner).toBe('alice');
      expect(sessionB.usage.turns).toBe(1);
      expect(sessionB.usage.costUsd).toBeCloseTo(plain.turn.result.total_cost_usd, 9);
      expect((await hub.list(admin, { owner: 'alice' })).sessions).toHaveLength(2);
    });

    // A turn after the import: the stored transcript is no longer the local file's.
    const later = { type: 'user', uuid: 'a-later-turn' };
    const reopened = await openBackend(db);
    try {
      await reopened.store.append(keyOf(delegating.first.sessionId), [later]);
    } finally {
      await reopened.close();
    }
    const again = await importInto(db, configDir, { owner: 'bob' });
    expect(again).toMatchObject({ found: 2, imported: 0, entries: 0, alreadyThere: 2, failed: [] });
    expect(await storedOf(db, delegating.first.sessionId)).toEqual({
      ...a,
      record: expect.objectContaining({ owner: 'alice' }),
      main: [...(a.main ?? []), later],
    });
  });

  test('a corrupt line fails only its session, naming the file and line, and stores nothing of it', async () => {
    const copy = await copyOfConfigDir();
    // A corrupt subagent transcript: its session's clean main transcript must not go in alone.
    const subagentFile = inCopy(copy, delegating.subagentFile);
    const subLines = (await readFile(subagentFile, 'utf8')).split('\n');
    subLines[2] = '{"type":"user","message":';
    await writeFile(subagentFile, subLines.join('\n'));
    // A third session whose main transcript breaks at line 2.
    const brokenId = '0b7e0c52-4f57-4d0e-8a57-3a8c2b8f6c11';
    const brokenFile = path.join(path.dirname(inCopy(copy, plain.file)), `${brokenId}.jsonl`);
    await writeFile(brokenFile, '{"type":"user","uuid":"u1"}\nnot json\n{"type":"assistant"}\n');

    const db = await freshDb();
    const summary = await importInto(db, copy);
    expect(summary).toMatchObject({ found: 3, imported: 1, alreadyThere: 0 });
    expect(summary.failed).toEqual(
      expect.arrayContaining([
        {
          sessionId: delegating.first.sessionId,
          file: subagentFile,
          line: 3,
          reason: expect.stringContaining(`${subagentFile}:3: not valid JSON`),
        },
        {
          sessionId: brokenId,
          file: brokenFile,
          line: 2,
          reason: expect.stringContaining(`${brokenFile}:2: not valid JSON`),
        },
      ]),
    );
    expect(summary.failed).toHaveLength(2);
    for (const id of [delegating.first.sessionId, brokenId]) {
      expect(await storedOf(db, id)).toEqual({ record: null, main: null, subkeys: [] });
    }
    expect((await storedOf(db, plain.turn.sessionId)).record).not.toBeNull();
  });

  test('a session whose registration is refused leaves nothing of it behind', async () => {
    const db = await freshDb();
    const backend = await openBackend(db);
    // One session per owner: the second registration fails after its entries were appended.
    const hub = createHub({ backend, ownsBackend: true, limits: { maxSessionsPerOwner: 1 } });
    try {
      const summary = await importTranscripts(hub, admin, {
        projectsDir: path.join(configDir, 'projects'),
        owner: 'alice',
      });
      expect(summary).toMatchObject({ imported: 1, alreadyThere: 0 });
      expect(summary.failed).toHaveLength(1);
      const failed = summary.failed[0];
      expect(failed?.reason).toMatch(/maxSessionsPerOwner|limit/i);
      expect(await backend.registry.get(TENANT, failed?.sessionId as string)).toBeNull();
      expect(await backend.store.load(keyOf(failed?.sessionId as string))).toBeNull();
      expect(await backend.store.listSubkeys(keyOf(failed?.sessionId as string))).toEqual([]);
    } finally {
      await hub.close();
    }
  });

  test('finishes what an interrupted import left, and leaves a foreign transcript alone', async () => {
    const db = await freshDb();
    const backend = await openBackend(db);
    const plainEntries = await fileEntries(plain.file);
    const foreign = [{ type: 'user', uuid: 'not-from-these-files' }];
    try {
      // An import that stopped after its first batch: a prefix, with no record.
      await backend.store.append(keyOf(plain.turn.sessionId), plainEntries.slice(0, 3));
      // Something else wrote under the other id.
      await backend.store.append(keyOf(delegating.first.sessionId), foreign);
    } finally {
      await backend.close();
    }
    const summary = await importInto(db, configDir);
    expect(summary).toMatchObject({ imported: 1, entries: plainEntries.length });
    expect(summary.failed).toEqual([
      {
        sessionId: delegating.first.sessionId,
        file: delegating.file,
        line: null,
        reason: expect.stringContaining('different transcript'),
      },
    ]);
    expect((await storedOf(db, plain.turn.sessionId)).main).toEqual(plainEntries);
    expect(await storedOf(db, delegating.first.sessionId)).toEqual({
      record: null,
      main: foreign,
      subkeys: [],
    });
  });

  test('--dry-run counts what would be imported and writes nothing; odd names are skipped with a note', async () => {
    const copy = await copyOfConfigDir();
    const oddFile = path.join(path.dirname(inCopy(copy, plain.file)), 'notes.jsonl');
    await writeFile(oddFile, '{"type":"user"}\n');
    const db = await freshDb();
    const summary = await importInto(db, path.join(copy, 'projects'), { dryRun: true });
    const files = [delegating.file, delegating.subagentFile, plain.file];
    expect(summary).toMatchObject({
      dryRun: true,
      found: 2,
      imported: 2,
      entries: (await Promise.all(files.map(fileEntries))).flat().length,
      failed: [],
      skipped: [{ file: oddFile, reason: expect.stringContaining('uuid') }],
    });
    for (const id of [delegating.first.sessionId, plain.turn.sessionId]) {
      expect(await storedOf(db, id)).toEqual({ record: null, main: null, subkeys: [] });
    }
  });

  test('a missing --from is NOT_FOUND before any backend is opened', async () => {
    const dbDir = await dirs.make('import-no-db');
    const output = capturedOutput(false);
    const error = await runImport(
      { from: path.join(dbDir, 'nothing-here'), owner: 'alice', db: `sqlite:${dbDir}/hub.db` },
      output,
    ).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'NOT_FOUND' });
    await expect(stat(path.join(dbDir, 'hub.db'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('sessions import through commander', () => {
  function program(): Command {
    const root = new Command('sessionhub').exitOverride();
    importCommand(root.command('sessions').exitOverride()).exitOverride();
    return root;
  }

  async function run(args: string[]): Promise<string> {
    let stdout = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      stdout += String(chunk);
      return true;
    });
    try {
      await program().parseAsync(['sessions', 'import', ...args], { from: 'user' });
    } finally {
      vi.mocked(process.stdout.write).mockRestore();
    }
    return stdout;
  }

  test('parses the flags, prints the summary and exits 1 only when a session failed', async () => {
    const db = await freshDb();
    const printed = await run([
      '--from',
      configDir,
      '--owner',
      'carol',
      '--tenant',
      TENANT,
      '--db',
      db,
      '--json',
    ]);
    expect(JSON.parse(printed)).toMatchObject({ imported: 2, owner: 'carol', tenant: TENANT });
    expect(process.exitCode ?? 0).toBe(0);
    expect((await storedOf(db, plain.turn.sessionId)).record?.owner).toBe('carol');

    const copy = await copyOfConfigDir();
    await writeFile(inCopy(copy, plain.file), 'broken\n');
    await rm(inCopy(copy, delegating.file));
    const text = await run([
      '--from',
      copy,
      '--owner',
      'carol',
      '--tenant',
      TENANT,
      '--db',
      await freshDb(),
    ]);
    expect(text).toContain('imported 0 sessions (0 entries), skipped 0 already there, 1 failed');
    expect(text).toContain(
      `failed ${plain.turn.sessionId}: ${inCopy(copy, plain.file)}:1: not valid JSON`,
    );
    expect(process.exitCode).toBe(1);
  });

  test('--owner is required', async () => {
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const error = await program()
      .parseAsync(['sessions', 'import', '--from', configDir], { from: 'user' })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'commander.missingMandatoryOptionValue' });
  });
});

function capturedOutput(json: boolean): Output & { lines: string[] } {
  const lines: string[] = [];
  return { json, lines, out: (text) => lines.push(text), err: (text) => lines.push(text) };
}
