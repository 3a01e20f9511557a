/**
 * What the real CLI sends to the mock, and that the mock's answers work for it: side requests
 * (title generation, `HEAD /api/hello`) leave the script alone, failures are retried, and a tool
 * call makes the round trip through the CLI's tool runner.
 */
import type { SDKMessage } from '@anthropic-ai/claude-agent-sdk';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type MockAnthropic, startMockAnthropic } from '../../src/testing/index.js';
import { runTurn, TempDirs } from '../helpers/sdk.js';

const TIMEOUT = 60_000;
const dirs = new TempDirs();
let mock: MockAnthropic;
let cwd: string;

beforeAll(async () => {
  mock = await startMockAnthropic();
  cwd = await dirs.make('cli-cwd');
});
afterAll(async () => {
  await mock?.close();
  await dirs.cleanup();
});

function forSession(sessionId: string) {
  return mock.requests.filter((r) => r.sessionId === sessionId);
}

test(
  'title generation and HEAD /api/hello do not consume the scripted reply',
  async () => {
    mock.reset();
    // The side requests run beside the turn; holding the answer until both have arrived keeps
    // the CLI from exiting before they are sent.
    mock.enqueue(async (request) => {
      await mock.waitForRequest((r) => r.kind === 'title' && r.sessionId === request.sessionId);
      await mock.waitForOtherRequest((r) => r.url === '/api/hello');
      return 'The scripted answer';
    });
    const turn = await runTurn({
      mock,
      prompt: 'Which port does the mock listen on?',
      cwd,
      configDir: await dirs.make('cli-host'),
      nonessentialTraffic: true,
    });
    expect(turn.text).toBe('The scripted answer');
    expect(mock.pending).toBe(0);

    const requests = forSession(turn.sessionId);
    const title = requests.find((r) => r.kind === 'title');
    const conversation = requests.filter((r) => r.kind === 'conversation');
    expect(conversation).toHaveLength(1);
    expect(conversation[0]?.outcome).toMatchObject({ type: 'reply', source: 'script' });
    expect(title?.outcome).toMatchObject({
      type: 'reply',
      source: 'title',
      message: { content: [{ type: 'text', text: '{"title":"Mock session"}' }] },
    });
    // What tells them apart: the title request asks for JSON with a single `title` property and
    // offers no tools; the conversation offers the CLI's tools.
    expect(title?.body.tools).toEqual([]);
    expect(title?.lastUserText).toContain('<session>');
    expect(conversation[0]?.body.tools?.length).toBeGreaterThan(0);

    for (const request of requests) {
      expect(request.url).toBe('/v1/messages?beta=true');
      expect(request.stream).toBe(true);
      expect(request.headers['x-api-key']).toBe('mock-key');
      expect(request.headers['anthropic-version']).toBe('2023-06-01');
      expect(request.headers['user-agent']).toMatch(/^claude-cli\//);
    }
    expect(mock.otherRequests.map((r) => `${r.method} ${r.url} ${r.status}`)).toContain(
      'HEAD /api/hello 404',
    );

    // With non-essential traffic off (what the other SDK tests use) only the turn is sent.
    mock.reset();
    const quiet = await runTurn({
      mock,
      prompt: 'And now quietly?',
      cwd,
      configDir: await dirs.make('cli-host'),
    });
    expect(forSession(quiet.sessionId).map((r) => r.kind)).toEqual(['conversation']);
    expect(mock.otherRequests).toEqual([]);
  },
  TIMEOUT,
);

test(
  'the CLI retries a dropped stream and a 529, then takes the next scripted reply',
  async () => {
    mock.reset();
    mock.enqueue({ fail: 'drop' }, { fail: { status: 529 } }, 'Third time lucky');
    const turn = await runTurn({
      mock,
      prompt: 'Please survive the outage',
      cwd,
      configDir: await dirs.make('cli-host'),
    });
    expect(turn.text).toBe('Third time lucky');
    expect(forSession(turn.sessionId).map((r) => r.outcome?.type)).toEqual([
      'failure',
      'failure',
      'reply',
    ]);
    const retries = turn.messages.filter(
      (m): m is Extract<SDKMessage, { subtype: 'api_retry' }> =>
        m.type === 'system' && m.subtype === 'api_retry',
    );
    expect(retries.map((m) => m.error_status)).toEqual([null, 529]);
  },
  TIMEOUT,
);

test(
  'a scripted tool call runs in the CLI and its result reaches the next request',
  async () => {
    mock.reset();
    mock.enqueue(
      {
        content: [
          { type: 'text', text: 'Let me check.' },
          {
            type: 'tool_use',
            id: 'toolu_e2e_1',
            name: 'Bash',
            input: { command: 'echo tool-ran' },
          },
        ],
      },
      'The tool said tool-ran.',
    );
    const turn = await runTurn({
      mock,
      prompt: 'Run the tool',
      cwd,
      configDir: await dirs.make('cli-host'),
      options: { allowedTools: ['Bash'] },
    });
    expect(turn.text).toBe('The tool said tool-ran.');
    expect(turn.result.num_turns).toBe(2);

    const [ask, followUp] = forSession(turn.sessionId);
    const last = followUp?.body.messages.at(-1);
    expect(last?.role).toBe('user');
    expect(last?.content).toContainEqual(
      expect.objectContaining({
        type: 'tool_result',
        tool_use_id: 'toolu_e2e_1',
        content: 'tool-ran',
      }),
    );
    // The CLI marks cache breakpoints; the follow-up re-reads the prefix the first call wrote.
    const usage = (r: typeof ask) =>
      r?.outcome?.type === 'reply' ? r.outcome.message.usage : undefined;
    expect(usage(ask)?.cache_creation_input_tokens).toBeGreaterThan(1000);
    expect(usage(followUp)?.cache_read_input_tokens).toBeGreaterThan(1000);
    expect(turn.result.usage.cache_read_input_tokens).toBe(
      usage(followUp)?.cache_read_input_tokens,
    );
    expect(turn.result.total_cost_usd).toBeGreaterThan(0);
  },
  TIMEOUT,
);
