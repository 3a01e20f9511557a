/**
 * Runs real Agent SDK turns (the bundled `claude` CLI) against the mock Anthropic API. Every
 * "host" is its own temporary CLAUDE_CONFIG_DIR, so a resume on another config dir proves the
 * transcript came from the SessionStore and not from local disk.
 */
import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type Options,
  query,
  type SDKMessage,
  type SDKResultMessage,
} from '@anthropic-ai/claude-agent-sdk';
import { type MockAnthropic, mockModelEnv } from '../../src/testing/index.js';

/** Temporary directories that are all removed by one `cleanup()`. */
export class TempDirs {
  private readonly dirs: string[] = [];

  /** A new empty directory, by its real path (the SDK derives project keys from real paths). */
  async make(prefix: string): Promise<string> {
    const dir = await realpath(await mkdtemp(path.join(tmpdir(), `sessionhub-${prefix}-`)));
    this.dirs.push(dir);
    return dir;
  }

  async cleanup(): Promise<void> {
    const dirs = this.dirs.splice(0);
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  }
}

/** The SDK's default projectKey for a cwd: every character outside [a-zA-Z0-9] becomes `-`. */
export function projectKeyFor(cwd: string): string {
  if (cwd.length > 200) throw new Error('projectKeyFor() does not reproduce the SDK hash suffix');
  return cwd.replace(/[^a-zA-Z0-9]/g, '-');
}

export interface SdkEnvOptions {
  /**
   * Let the CLI send its non-essential traffic: `HEAD /api/hello`, title generation and
   * telemetry (which goes to Anthropic's servers, not the mock, and fails offline). Default false.
   */
  nonessentialTraffic?: boolean;
  extra?: Record<string, string>;
}

/** The environment for the CLI: the mock as the API, a test key, and one host's config dir. */
export function sdkEnv(
  mock: MockAnthropic,
  configDir: string,
  options: SdkEnvOptions = {},
): Record<string, string | undefined> {
  const env = mockModelEnv(mock.url, configDir, options);
  Object.assign(env, options.extra);
  return env;
}

export interface TurnOptions extends SdkEnvOptions {
  mock: MockAnthropic;
  prompt: string;
  /** This host's CLAUDE_CONFIG_DIR. */
  configDir: string;
  cwd: string;
  /** Anything else for query(): sessionStore, resume, forkSession, allowedTools... */
  options?: Omit<Options, 'cwd' | 'env'>;
  /** Return error results instead of throwing. Default false. */
  allowError?: boolean;
  /**
   * Return even if the SDK reported `mirror_error` (a SessionStore.append that failed three
   * times; the SDK then drops the batch and the turn still succeeds). Default false: throw.
   */
  allowMirrorErrors?: boolean;
  /** Abort the CLI after this long, so a stuck turn cannot outlive the test. Default 50 s. */
  timeoutMs?: number;
}

export interface TurnResult {
  sessionId: string;
  result: SDKResultMessage;
  /** The result text of a successful turn, '' otherwise. */
  text: string;
  messages: SDKMessage[];
  stderr: string;
  durationMs: number;
}

/** Runs one query() turn to its result message. */
export async function runTurn(turn: TurnOptions): Promise<TurnResult> {
  const abortController = new AbortController();
  const timer = setTimeout(() => abortController.abort(), turn.timeoutMs ?? 50_000);
  const messages: SDKMessage[] = [];
  let stderr = '';
  const started = performance.now();
  try {
    const q = query({
      prompt: turn.prompt,
      options: {
        ...turn.options,
        cwd: turn.cwd,
        env: sdkEnv(turn.mock, turn.configDir, turn),
        abortController,
        stderr: (data) => {
          stderr += data;
        },
      },
    });
    for await (const message of q) messages.push(message);
  } catch (error) {
    throw new Error(`query() failed: ${(error as Error).message}\nCLI stderr:\n${stderr}`, {
      cause: error,
    });
  } finally {
    clearTimeout(timer);
  }
  const result = messages.findLast((m): m is SDKResultMessage => m.type === 'result');
  if (!result) throw new Error(`query() ended without a result message.\nCLI stderr:\n${stderr}`);
  if (result.subtype !== 'success' && !turn.allowError) {
    throw new Error(`The turn failed (${result.subtype}): ${JSON.stringify(result)}\n${stderr}`);
  }
  const mirrorErrors = messages.filter((m) => m.type === 'system' && m.subtype === 'mirror_error');
  if (mirrorErrors.length > 0 && !turn.allowMirrorErrors) {
    throw new Error(`The store refused transcript batches: ${JSON.stringify(mirrorErrors)}`);
  }
  return {
    sessionId: result.session_id,
    result,
    text: result.subtype === 'success' ? result.result : '',
    messages,
    stderr,
    durationMs: performance.now() - started,
  };
}

/**
 * Runs `fn` with CLAUDE_CONFIG_DIR pointing at one host's config dir: the SDK's local-disk
 * helpers (importSessionToStore without a store to read from) run in this process and read it.
 */
export async function withConfigDir<T>(configDir: string, fn: () => Promise<T>): Promise<T> {
  const previous = process.env.CLAUDE_CONFIG_DIR;
  process.env.CLAUDE_CONFIG_DIR = configDir;
  try {
    return await fn();
  } finally {
    if (previous === undefined) delete process.env.CLAUDE_CONFIG_DIR;
    else process.env.CLAUDE_CONFIG_DIR = previous;
  }
}

/** Text of an SDK message's content (`message.content` as a string or text blocks). */
export function messageText(message: unknown): string {
  const content = (message as { content?: unknown } | undefined)?.content;
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .filter((block): block is { type: 'text'; text: string } => block?.type === 'text')
    .map((block) => block.text)
    .join('\n');
}
