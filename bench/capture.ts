/**
 * Captures what real query() turns hand to a SessionStore: one session, resumed turn after turn
 * through the bundled CLI against the mock Anthropic API, with a recording store in front of an
 * in-memory one. The benchmark replays these batches against every backend, so the stores are
 * measured on the SDK's real batch shapes rather than invented ones.
 *
 * With the default 'batched' flush, CLI 2.1.329 makes two append calls per turn: the turn's
 * entries (7 for a plain answer, 11 with one tool call, 17 for the session's first turn, which
 * also records its environment) and a small one with the cost state (1-2 entries).
 */
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type Options,
  query,
  type SDKMessage,
  type SessionKey,
  type SessionStoreEntry,
  type SessionStoreFlush,
} from '@anthropic-ai/claude-agent-sdk';
import { MemoryTranscriptStore } from '../src/backends/memory/index.js';
import {
  type MockReply,
  mockModelEnv,
  startMockAnthropic,
} from '../src/testing/mock-anthropic/index.js';
import { RecordingStore } from '../src/testing/recording-store.js';

export interface CapturedBatch {
  /** 0-based turn of the session that made this append call. */
  turn: number;
  key: SessionKey;
  entries: SessionStoreEntry[];
}

export interface CaptureOptions {
  /** Turns to run, each a query() that resumes the session from the store. */
  turns: number;
  /**
   * Which turns make the model call a tool (Read of a small file in the project) before it
   * answers: none, every other turn (the default; turns 1, 3, ...), or every turn.
   */
  toolCalls?: 'none' | 'alternate' | 'every';
  /** The SDK's flush strategy. Default 'batched', as the SDK defaults. */
  sessionStoreFlush?: SessionStoreFlush;
}

const NOTES = Array.from(
  { length: 40 },
  (_, i) => `${i + 1}. Deployment note ${i + 1}: replicas share nothing but the session store.`,
).join('\n');

/** A deterministic answer of a realistic length (a few hundred characters). */
function answer(turn: number): string {
  const sentences = [
    `Here is what I found for turn ${turn + 1}.`,
    'The session store keeps every transcript entry, so any replica can resume the conversation.',
    'Appends are idempotent on the entry uuid, which makes the SDK retries safe.',
    'Summaries are folded on write, so listing sessions never rereads a transcript.',
    'Nothing else needs to be shared between hosts.',
  ];
  return sentences.join(' ');
}

/**
 * Runs `turns` real query() turns of one session and returns every `append(key, entries)` call
 * the SDK made, in order. Each turn runs on a fresh CLAUDE_CONFIG_DIR, as a stateless replica
 * would, so every resume loads the transcript from the store.
 */
export async function captureTurnBatches(options: CaptureOptions): Promise<CapturedBatch[]> {
  const { turns, toolCalls = 'alternate', sessionStoreFlush = 'batched' } = options;
  if (!Number.isInteger(turns) || turns < 1) {
    throw new RangeError(`captureTurnBatches(): turns must be a positive integer, got ${turns}.`);
  }
  const root = await realpath(await mkdtemp(path.join(tmpdir(), 'sessionhub-capture-')));
  const cwd = path.join(root, 'project');
  const mock = await startMockAnthropic();
  const store = new RecordingStore(new MemoryTranscriptStore());
  /** How many append calls had been made when each turn started. */
  const turnStarts: number[] = [];
  try {
    await mkdir(cwd);
    const notes = path.join(cwd, 'NOTES.md');
    await writeFile(notes, `${NOTES}\n`);

    let sessionId: string | undefined;
    for (let turn = 0; turn < turns; turn++) {
      turnStarts.push(store.appends().length);
      const withTool = toolCalls === 'every' || (toolCalls === 'alternate' && turn % 2 === 1);
      const replies: MockReply[] = withTool
        ? [
            {
              content: [
                { type: 'text', text: 'Let me read the deployment notes first.' },
                { type: 'tool_use', name: 'Read', input: { file_path: notes } },
              ],
            },
            { content: answer(turn) },
          ]
        : [{ content: answer(turn) }];
      mock.enqueue(...replies);

      const configDir = await mkdtemp(path.join(root, `host-${turn}-`));
      const queryOptions: Options = {
        cwd,
        env: mockModelEnv(mock.url, configDir),
        sessionStore: store,
        sessionStoreFlush,
        allowedTools: ['Read'],
        ...(sessionId ? { resume: sessionId } : {}),
      };
      const prompt = `Turn ${turn + 1}: what do the deployment notes say about replicas?`;
      let stderr = '';
      let result: Extract<SDKMessage, { type: 'result' }> | undefined;
      for await (const message of query({
        prompt,
        options: { ...queryOptions, stderr: (data) => (stderr += data) },
      })) {
        if (message.type === 'result') result = message;
        if (message.type === 'system' && message.subtype === 'mirror_error') {
          throw new Error(`The in-memory store refused a batch: ${message.error}`);
        }
      }
      if (result?.subtype !== 'success') {
        throw new Error(`Turn ${turn + 1} did not succeed: ${JSON.stringify(result)}\n${stderr}`);
      }
      if (mock.pending !== 0) {
        throw new Error(`Turn ${turn + 1} left ${mock.pending} scripted replies unused.`);
      }
      sessionId = result.session_id;
    }
    return store.appends().map(({ key, entries }, call) => ({
      turn: turnStarts.findLastIndex((start) => start <= call),
      key,
      entries,
    }));
  } finally {
    await mock.close();
    await rm(root, { recursive: true, force: true });
  }
}
