/**
 * The mock Anthropic Messages API, checked from the outside: raw HTTP with a strict SSE frame
 * parser, and the official `@anthropic-ai/sdk` client (a peer dependency of the Agent SDK) as a
 * second, independent reader of the wire format.
 */
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { isSessionHubError } from '../src/core/errors.js';
import {
  type MockAnthropic,
  type MockClock,
  type MockFailure,
  startMockAnthropic,
} from '../src/testing/index.js';

const MODEL = 'claude-test-1';

function body(
  prompt: string,
  extra: Record<string, unknown> = {},
): Anthropic.MessageCreateParamsNonStreaming {
  return {
    model: MODEL,
    max_tokens: 1024,
    messages: [{ role: 'user', content: prompt }],
    ...extra,
  };
}

/**
 * A title-generation request the way CLI 2.1.329 sends it (trimmed): no tools, the prompt in
 * <session> tags, structured output with a single `title` property.
 */
function titleBody(prompt: string) {
  return {
    model: MODEL,
    max_tokens: 128000,
    stream: true,
    tools: [],
    system: [
      { type: 'text', text: 'You are naming a coding session so the user can pick it out.' },
    ],
    messages: [
      { role: 'user', content: [{ type: 'text', text: `<session>\n${prompt}\n</session>` }] },
    ],
    output_config: {
      effort: 'medium',
      format: {
        type: 'json_schema',
        schema: {
          type: 'object',
          properties: { title: { type: 'string' } },
          required: ['title'],
          additionalProperties: false,
        },
      },
    },
  };
}

async function post(
  mock: MockAnthropic,
  payload: unknown,
  path = '/v1/messages',
): Promise<Response> {
  return fetch(`${mock.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': 'test-key' },
    body: JSON.stringify(payload),
  });
}

interface Frame {
  event: string;
  data: Record<string, unknown>;
}

/**
 * Parses an SSE body strictly: every frame is exactly `event: <name>` and `data: <json>` and ends
 * with a blank line, and the JSON's `type` equals the event name, as the API sends them.
 */
function parseSse(text: string): Frame[] {
  expect(text.endsWith('\n\n')).toBe(true);
  const frames = text.slice(0, -2).split('\n\n');
  return frames.map((frame) => {
    const lines = frame.split('\n');
    expect(lines).toHaveLength(2);
    const [eventLine, dataLine] = lines as [string, string];
    expect(eventLine).toMatch(/^event: [a-z_]+$/);
    expect(dataLine.startsWith('data: ')).toBe(true);
    const event = eventLine.slice('event: '.length);
    const data = JSON.parse(dataLine.slice('data: '.length)) as Record<string, unknown>;
    expect(data.type).toBe(event);
    return { event, data };
  });
}

function client(mock: MockAnthropic): Anthropic {
  return new Anthropic({ apiKey: 'test-key', baseURL: mock.url, maxRetries: 0 });
}

/** A clock whose sleeps return at once and are written down, so latency is checked exactly. */
function recordingClock(): MockClock & { sleeps: number[] } {
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => 1_000,
    async sleep(ms) {
      sleeps.push(ms);
    },
  };
}

describe('mock Anthropic API', () => {
  let mock: MockAnthropic;

  beforeAll(async () => {
    mock = await startMockAnthropic();
  });
  afterEach(() => mock.reset());
  afterAll(() => mock.close());

  describe('options', () => {
    test('invalid options are refused with the field and what is wrong', async () => {
      const refusal = (options: unknown) =>
        startMockAnthropic(options as Parameters<typeof startMockAnthropic>[0]).then(
          () => 'started',
          (error: unknown) => error,
        );
      const negative = await refusal({ latencyMs: -5 });
      expect(isSessionHubError(negative, 'INVALID_OPTION')).toBe(true);
      expect(String((negative as Error).message)).toMatch(/latencyMs/);
      expect(String(((await refusal({ latency: 5 })) as Error).message)).toMatch(/latency/);
      expect(String(((await refusal({ port: 70_000 })) as Error).message)).toMatch(/port/);
      const badStep = (await refusal({ script: ['ok', { content: [] }] })) as Error;
      expect(badStep.message).toMatch(/script\[1\]\.content/);
      const badFailure = (await refusal({ script: [{ fail: { status: 200 } }] })) as Error;
      expect(badFailure.message).toMatch(/script\[0\]\.fail\.status: must be an HTTP error status/);
    });

    test('enqueue and failNext validate what they are given', () => {
      expect(() => mock.enqueue({ content: 'x', stopReason: 'done' } as never)).toThrow(
        /stopReason/,
      );
      expect(() => mock.enqueue({ fail: { drop: 'sometimes' } } as never)).toThrow(/drop/);
      expect(() => mock.enqueue(42 as never)).toThrow(/got number/);
      expect(() => mock.failNext(0, { status: 429 })).toThrow(/positive integer/);
      expect(() => mock.failNext(1, { status: 429, retryAfterSeconds: -1 })).toThrow(
        /retryAfterSeconds/,
      );
      expect(mock.pending).toBe(0);
    });

    test('a port in use is reported with the address', async () => {
      const error = await startMockAnthropic({ port: mock.port }).catch((e: unknown) => e);
      expect(isSessionHubError(error, 'INVALID_OPTION')).toBe(true);
      expect((error as Error).message).toMatch(/EADDRINUSE/);
    });
  });

  describe('JSON mode', () => {
    test('a scripted reply comes back as a complete Messages API message', async () => {
      mock.enqueue('Hello from the script.');
      const response = await post(mock, body('Hi'));
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('application/json');
      expect(response.headers.get('request-id')).toMatch(/^req_mock_/);
      const message = (await response.json()) as Record<string, unknown>;
      expect(message).toEqual({
        id: expect.stringMatching(/^msg_mock_/),
        type: 'message',
        role: 'assistant',
        model: MODEL,
        content: [{ type: 'text', text: 'Hello from the script.' }],
        stop_reason: 'end_turn',
        stop_sequence: null,
        usage: {
          input_tokens: expect.any(Number),
          output_tokens: expect.any(Number),
          cache_creation_input_tokens: 0,
          cache_read_input_tokens: 0,
          cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
          service_tier: 'standard',
        },
      });
      const usage = message.usage as { input_tokens: number; output_tokens: number };
      expect(usage.input_tokens).toBeGreaterThan(0);
      expect(usage.output_tokens).toBe(Math.ceil('Hello from the script.'.length / 4));
    });

    test('the official client reads tool use, several blocks and the stop reason', async () => {
      mock.enqueue({
        content: [
          { type: 'text', text: 'Checking.' },
          { type: 'tool_use', id: 'toolu_fixed', name: 'Read', input: { file_path: '/tmp/a.txt' } },
          { type: 'tool_use', name: 'Bash', input: { command: 'ls' } },
        ],
      });
      const message = await client(mock).messages.create(body('Look around'));
      expect(message.stop_reason).toBe('tool_use');
      expect(message.content).toEqual([
        { type: 'text', text: 'Checking.' },
        { type: 'tool_use', id: 'toolu_fixed', name: 'Read', input: { file_path: '/tmp/a.txt' } },
        {
          type: 'tool_use',
          id: expect.stringMatching(/^toolu_mock_\d+$/),
          name: 'Bash',
          input: { command: 'ls' },
        },
      ]);
    });
  });

  describe('streaming', () => {
    test('SSE frames follow the API event sequence and carry the whole reply', async () => {
      const text = 'A reply long enough to be cut into several text deltas.';
      const input = { command: 'echo "streamed json"', description: 'split across deltas' };
      mock.enqueue({
        content: [
          { type: 'text', text },
          { type: 'tool_use', name: 'Bash', input },
        ],
      });
      const response = await post(mock, body('Stream it', { stream: true }));
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
      const frames = parseSse(await response.text());
      const names = frames.map((f) => f.event);

      expect(names[0]).toBe('message_start');
      expect(names.slice(1, 3)).toEqual(['content_block_start', 'ping']);
      expect(names.slice(-2)).toEqual(['message_delta', 'message_stop']);
      expect(names.filter((n) => n === 'ping')).toHaveLength(1);

      const start = frames[0]?.data.message as Record<string, unknown>;
      expect(start).toMatchObject({
        type: 'message',
        role: 'assistant',
        model: MODEL,
        content: [],
        stop_reason: null,
      });
      expect(start.usage).toMatchObject({ output_tokens: 1, cache_read_input_tokens: 0 });

      const deltas = (index: number) =>
        frames
          .filter((f) => f.event === 'content_block_delta' && f.data.index === index)
          .map((f) => f.data.delta as Record<string, string>);
      const textDeltas = deltas(0);
      expect(textDeltas.length).toBeGreaterThan(1);
      expect(textDeltas.every((d) => d.type === 'text_delta')).toBe(true);
      expect(textDeltas.map((d) => d.text).join('')).toBe(text);
      const jsonDeltas = deltas(1);
      expect(jsonDeltas.length).toBeGreaterThan(1);
      expect(jsonDeltas.every((d) => d.type === 'input_json_delta')).toBe(true);
      expect(JSON.parse(jsonDeltas.map((d) => d.partial_json).join(''))).toEqual(input);

      const blockStarts = frames
        .filter((f) => f.event === 'content_block_start')
        .map((f) => f.data);
      expect(blockStarts).toEqual([
        { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
        {
          type: 'content_block_start',
          index: 1,
          content_block: {
            type: 'tool_use',
            id: expect.stringMatching(/^toolu_mock_/),
            name: 'Bash',
            input: {},
          },
        },
      ]);
      // Every block is closed before the next one opens.
      const order = frames
        .filter((f) => f.event.startsWith('content_block_'))
        .map((f) => `${f.event}:${f.data.index}`);
      expect(order.indexOf('content_block_stop:0')).toBeLessThan(
        order.indexOf('content_block_start:1'),
      );

      const delta = frames.at(-2)?.data as { delta: unknown; usage: Record<string, number> };
      expect(delta.delta).toEqual({ stop_reason: 'tool_use', stop_sequence: null });
      expect(delta.usage.output_tokens).toBeGreaterThan(1);
      expect(Object.keys(delta.usage).sort()).toEqual([
        'cache_creation_input_tokens',
        'cache_read_input_tokens',
        'input_tokens',
        'output_tokens',
      ]);
    });

    test('the official client assembles the same message from the stream as JSON mode returns', async () => {
      const answer = 'Forty-two, with unicode: héllo 👋🏽 done.';
      const reply = {
        content: [
          { type: 'thinking' as const, thinking: 'Let me consider the question carefully.' },
          { type: 'text' as const, text: answer },
        ],
        stopReason: 'max_tokens' as const,
      };
      mock.enqueue(reply, reply);
      const streamed = await client(mock).messages.stream(body('Same twice')).finalMessage();
      const plain = await client(mock).messages.create(body('Same twice'));
      const fields = (m: Anthropic.Message) => {
        const { type, role, model, content, stop_reason, stop_sequence } = m;
        return { type, role, model, content, stop_reason, stop_sequence };
      };
      expect(fields(streamed)).toEqual(fields(plain));
      expect(streamed.stop_reason).toBe('max_tokens');
      expect(streamed.content[0]).toMatchObject({
        type: 'thinking',
        signature: expect.any(String),
      });
      expect(streamed.content[1]).toEqual({ type: 'text', text: answer });
      expect(streamed.usage.output_tokens).toBe(plain.usage.output_tokens);
    });
  });

  describe('script', () => {
    test('replies are taken in order, then the default reply quotes the last user message', async () => {
      mock.enqueue(
        'first',
        { content: 'second' },
        (request) => `third saw: ${request.lastUserText}`,
      );
      expect(mock.pending).toBe(3);
      const texts: string[] = [];
      for (const prompt of ['one', 'two', 'three', 'four']) {
        const message = await client(mock).messages.create(body(prompt));
        texts.push((message.content[0] as { text: string }).text);
      }
      expect(texts).toEqual(['first', 'second', 'third saw: three', 'Mock reply to: four']);
      expect(mock.pending).toBe(0);
      expect(
        mock.requests.map((r) => (r.outcome?.type === 'reply' ? r.outcome.source : '?')),
      ).toEqual(['script', 'script', 'script', 'default']);
    });

    test('lastUserText skips system reminders and system messages; transcriptText has everything', async () => {
      await post(mock, {
        model: MODEL,
        max_tokens: 10,
        messages: [
          { role: 'user', content: 'earlier prompt' },
          {
            role: 'assistant',
            content: [{ type: 'tool_use', id: 't1', name: 'Bash', input: { command: 'pwd' } }],
          },
          {
            role: 'user',
            content: [
              {
                type: 'tool_result',
                tool_use_id: 't1',
                content: [{ type: 'text', text: '/home' }],
              },
              { type: 'text', text: '<system-reminder>\nnoise\n</system-reminder>' },
              { type: 'text', text: 'now this' },
            ],
          },
          { role: 'system', content: [{ type: 'text', text: '# Environment' }] },
        ],
      });
      const [request] = mock.requests;
      expect(request?.lastUserText).toBe('/home\nnow this');
      expect(request?.transcriptText).toContain('earlier prompt');
      expect(request?.transcriptText).toContain('Bash {"command":"pwd"}');
      expect(request?.transcriptText).toContain('# Environment');
    });

    test('the initial script and defaultReply options', async () => {
      const own = await startMockAnthropic({
        script: ['from options'],
        defaultReply: (request) => ({
          content: `default #${request.seq}`,
          stopReason: 'stop_sequence',
          stopSequence: '###',
        }),
      });
      try {
        const a = await client(own).messages.create(body('a'));
        const b = await client(own).messages.create(body('b'));
        expect(a.content).toEqual([{ type: 'text', text: 'from options' }]);
        expect(b.content).toEqual([{ type: 'text', text: 'default #2' }]);
        expect(b.stop_reason).toBe('stop_sequence');
        expect(b.stop_sequence).toBe('###');
      } finally {
        await own.close();
      }
    });

    test('an async reply function holds the answer until it resolves', async () => {
      let release!: () => void;
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      mock.enqueue(async () => {
        await released;
        return 'released';
      });
      const answer = client(mock).messages.create(body('held'));
      const request = await mock.waitForRequest((r) => r.lastUserText === 'held');
      expect(request.outcome).toBeUndefined();
      release();
      expect((await answer).content).toEqual([{ type: 'text', text: 'released' }]);
      expect(request.outcome).toMatchObject({ type: 'reply', source: 'script' });
    });

    test('waitForRequest resolves for requests already received and still to come', async () => {
      await post(mock, body('early'));
      const early = await mock.waitForRequest((r) => r.lastUserText === 'early');
      expect(early.seq).toBeGreaterThan(0);
      const late = mock.waitForRequest((r) => r.lastUserText === 'late');
      const hello = mock.waitForOtherRequest((r) => r.method === 'HEAD');
      await post(mock, body('late'));
      await fetch(`${mock.url}/api/hello`, { method: 'HEAD' });
      expect((await late).lastUserText).toBe('late');
      expect((await hello).url).toBe('/api/hello');

      const own = await startMockAnthropic();
      const never = own.waitForRequest();
      await own.close();
      await expect(never).rejects.toThrow(/closed/);
    });

    test('a reply function that throws becomes a 500 that says so', async () => {
      mock.enqueue(() => {
        throw new Error('script bug');
      });
      const response = await post(mock, body('x'));
      expect(response.status).toBe(500);
      expect(await response.json()).toMatchObject({
        error: { type: 'api_error', message: /script bug/ },
      });
      expect(mock.requests[0]?.outcome).toEqual({
        type: 'mock-error',
        message: expect.stringMatching(/script bug/),
      });
    });
  });

  describe('auxiliary requests', () => {
    test('title generation gets a JSON title and does not consume the script', async () => {
      mock.enqueue('meant for the conversation');
      const title = await client(mock).messages.create({
        ...titleBody('Fix the parser'),
        stream: false,
        max_tokens: 100,
      } as never);
      expect(title.content).toEqual([{ type: 'text', text: '{"title":"Mock session"}' }]);
      const streamedTitle = await post(mock, titleBody('Fix the parser'));
      const text = parseSse(await streamedTitle.text())
        .filter((f) => f.event === 'content_block_delta')
        .map((f) => (f.data.delta as { text: string }).text)
        .join('');
      expect(JSON.parse(text)).toEqual({ title: 'Mock session' });
      expect(mock.pending).toBe(1);

      const turn = await client(mock).messages.create(body('the real turn'));
      expect(turn.content).toEqual([{ type: 'text', text: 'meant for the conversation' }]);
      expect(mock.requests.map((r) => r.kind)).toEqual(['title', 'title', 'conversation']);
      expect(mock.conversationRequests.map((r) => r.lastUserText)).toEqual(['the real turn']);
    });

    test('a structured-output request with other properties is conversation', async () => {
      const other = titleBody('x');
      other.output_config.format.schema.properties = {
        title: { type: 'string' },
        body: { type: 'string' },
      } as never;
      await post(mock, other);
      expect(mock.requests[0]?.kind).toBe('conversation');
    });

    test('title and classify options', async () => {
      const own = await startMockAnthropic({
        script: ['scripted'],
        title: ({ body: b }) => `Title for ${b.messages.length} message(s)`,
        classify: ({ headers }) => (headers['x-side-request'] === '1' ? 'auxiliary' : undefined),
      });
      try {
        const title = await client(own).messages.create({
          ...titleBody('p'),
          stream: false,
          max_tokens: 100,
        } as never);
        expect(title.content).toEqual([
          { type: 'text', text: '{"title":"Title for 1 message(s)"}' },
        ]);
        const side = await client(own).messages.create(body('side'), {
          headers: { 'x-side-request': '1' },
        });
        expect(side.content).toEqual([{ type: 'text', text: 'Mock reply to: side' }]);
        const turn = await client(own).messages.create(body('turn'));
        expect(turn.content).toEqual([{ type: 'text', text: 'scripted' }]);
        expect(own.requests.map((r) => r.kind)).toEqual(['title', 'auxiliary', 'conversation']);
      } finally {
        await own.close();
      }
    });
  });

  describe('failures', () => {
    test.each<[MockFailure, number, string]>([
      [{ status: 429, retryAfterSeconds: 7 }, 429, 'rate_limit_error'],
      [{ status: 529 }, 529, 'overloaded_error'],
      [{ status: 500, message: 'boom' }, 500, 'api_error'],
    ])('%j answers with the Anthropic error JSON', async (failure, status, type) => {
      mock.failNext(1, failure);
      const response = await post(mock, body('x', { stream: true }));
      expect(response.status).toBe(status);
      expect(response.headers.get('content-type')).toBe('application/json');
      const requestId = response.headers.get('request-id');
      expect(await response.json()).toEqual({
        type: 'error',
        error: { type, message: expect.any(String) },
        request_id: requestId,
      });
      if (status === 429) expect(response.headers.get('retry-after')).toBe('7');
      else expect(response.headers.get('retry-after')).toBeNull();
    });

    test('the official client sees typed API errors, and failNext goes ahead of the script', async () => {
      mock.enqueue('after the failures');
      mock.failNext(2, { status: 529, shouldRetry: false });
      const api = client(mock);
      for (let i = 0; i < 2; i++) {
        const error = await api.messages.create(body('x')).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(Anthropic.APIError);
        expect((error as InstanceType<typeof Anthropic.APIError>).status).toBe(529);
        expect((error as InstanceType<typeof Anthropic.APIError>).type).toBe('overloaded_error');
      }
      const ok = await api.messages.create(body('x'));
      expect(ok.content).toEqual([{ type: 'text', text: 'after the failures' }]);
      expect(mock.requests.map((r) => r.outcome?.type)).toEqual(['failure', 'failure', 'reply']);
    });

    test('a connection dropped mid-stream delivers the first events, then fails', async () => {
      mock.failNext(1, 'drop');
      const response = await post(mock, body('x', { stream: true }));
      expect(response.status).toBe(200);
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let received = '';
      let failed: unknown;
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          received += decoder.decode(value, { stream: true });
        }
      } catch (error) {
        failed = error;
      }
      expect(failed).toBeDefined();
      expect(parseSse(received).map((f) => f.event)).toEqual([
        'message_start',
        'content_block_start',
        'ping',
      ]);
    });

    test('the official client reports a dropped stream and a dropped request as errors', async () => {
      mock.failNext(1, { drop: 'mid-stream', afterEvents: 1 });
      mock.failNext(1, { drop: 'before-response' });
      const api = client(mock);
      await expect(api.messages.create(body('x'))).rejects.toBeInstanceOf(
        Anthropic.APIConnectionError,
      );
      await expect(api.messages.stream(body('x')).finalMessage()).rejects.toThrow();
      expect(mock.requests.map((r) => r.outcome?.type)).toEqual(['failure', 'failure']);
    });

    test('an error event inside a stream, as the API sends when it overloads mid-answer', async () => {
      mock.failNext(1, { streamError: 'overloaded_error' });
      const response = await post(mock, body('x', { stream: true }));
      expect(response.status).toBe(200);
      const frames = parseSse(await response.text());
      expect(frames.map((f) => f.event)).toEqual(['message_start', 'error']);
      expect(frames[1]?.data).toEqual({
        type: 'error',
        error: { type: 'overloaded_error', message: 'Overloaded' },
      });

      mock.failNext(1, { streamError: 'overloaded_error' });
      const error = await client(mock)
        .messages.stream(body('x'))
        .finalMessage()
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Anthropic.APIError);
      expect((error as InstanceType<typeof Anthropic.APIError>).type).toBe('overloaded_error');
    });
  });

  describe('latency', () => {
    test('latency comes before the first byte and the chunk delay between events', async () => {
      const clock = recordingClock();
      const own = await startMockAnthropic({
        clock,
        latencyMs: 250,
        chunkDelayMs: 10,
        script: ['Hi', 'Hi'],
      });
      try {
        const frames = parseSse(await (await post(own, body('x', { stream: true }))).text());
        expect(clock.sleeps).toEqual([250, ...Array.from({ length: frames.length - 1 }, () => 10)]);
        clock.sleeps.length = 0;
        await post(own, body('x')).then((r) => r.json());
        expect(clock.sleeps).toEqual([250]);
        expect(own.requests[0]?.receivedAt).toBe(1_000);
      } finally {
        await own.close();
      }
    });

    test('a reply can override latency; failures wait too', async () => {
      const clock = recordingClock();
      const own = await startMockAnthropic({ clock, latencyMs: 50 });
      try {
        own.enqueue({ content: 'slow', latencyMs: 900, chunkDelayMs: 0 });
        own.failNext(1, { status: 529 });
        await post(own, body('x', { stream: true })).then((r) => r.text());
        await post(own, body('x', { stream: true })).then((r) => r.text());
        expect(clock.sleeps).toEqual([50, 900]);
      } finally {
        await own.close();
      }
    });

    test('with real timers the first byte never comes before latencyMs', async () => {
      const own = await startMockAnthropic({ latencyMs: 120 });
      try {
        const started = performance.now();
        const response = await post(own, body('x'));
        const elapsed = performance.now() - started;
        await response.json();
        // A lower bound only: timers fire late under load, never early (allow 2 ms of rounding).
        expect(elapsed).toBeGreaterThanOrEqual(118);
      } finally {
        await own.close();
      }
    });

    test('close() cuts a response that is still waiting, and resolves', async () => {
      let sleeping!: () => void;
      const asleep = new Promise<void>((resolve) => {
        sleeping = resolve;
      });
      const clock: MockClock = {
        now: () => 0,
        sleep: (_ms, signal) =>
          new Promise((_resolve, reject) => {
            sleeping();
            signal.addEventListener('abort', () => reject(signal.reason), { once: true });
          }),
      };
      const own = await startMockAnthropic({ clock, latencyMs: 60_000 });
      const pending = post(own, body('x'));
      await asleep;
      await own.close();
      await expect(pending).rejects.toThrow();
    });
  });

  describe('other endpoints', () => {
    test('unknown paths get a JSON 404 and are recorded apart from messages', async () => {
      const models = await fetch(`${mock.url}/v1/models`);
      expect(models.status).toBe(404);
      expect(await models.json()).toMatchObject({
        type: 'error',
        error: { type: 'not_found_error' },
      });
      const hello = await fetch(`${mock.url}/api/hello`, { method: 'HEAD' });
      expect(hello.status).toBe(404);
      expect(await hello.text()).toBe('');
      const get = await fetch(`${mock.url}/v1/messages`);
      expect(get.status).toBe(404);
      expect(mock.requests).toHaveLength(0);
      expect(mock.otherRequests.map((r) => `${r.method} ${r.url} ${r.status}`)).toEqual([
        'GET /v1/models 404',
        'HEAD /api/hello 404',
        'GET /v1/messages 404',
      ]);
    });

    test('count_tokens answers input_tokens without touching the script', async () => {
      mock.enqueue('kept');
      const response = await post(mock, body('count me'), '/v1/messages/count_tokens');
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ input_tokens: expect.any(Number) });
      expect(mock.pending).toBe(1);
    });

    test('a malformed body is a 400 invalid_request_error', async () => {
      const missing = await post(mock, { model: MODEL, messages: [] });
      expect(missing.status).toBe(400);
      expect(await missing.json()).toMatchObject({
        error: { type: 'invalid_request_error', message: 'max_tokens: Field required' },
      });
      const notJson = await fetch(`${mock.url}/v1/messages`, { method: 'POST', body: '{nope' });
      expect(notJson.status).toBe(400);
      expect(mock.requests).toHaveLength(0);
    });

    test('with apiKey set, a wrong key is a 401 authentication_error', async () => {
      const own = await startMockAnthropic({ apiKey: 'right' });
      try {
        const wrong = await new Anthropic({
          apiKey: 'wrong',
          baseURL: own.url,
          maxRetries: 0,
        }).messages
          .create(body('x'))
          .catch((e: unknown) => e);
        expect(wrong).toBeInstanceOf(Anthropic.AuthenticationError);
        const right = await new Anthropic({ apiKey: 'right', baseURL: own.url }).messages.create(
          body('x'),
        );
        expect(right.type).toBe('message');
      } finally {
        await own.close();
      }
    });
  });

  describe('usage', () => {
    const cached = (prompt: string, history: unknown[] = []) => ({
      model: MODEL,
      max_tokens: 100,
      system: [
        {
          type: 'text',
          text: 'A long, stable system prompt. '.repeat(40),
          cache_control: { type: 'ephemeral' },
        },
      ],
      messages: [
        ...history,
        {
          role: 'user',
          content: [{ type: 'text', text: prompt, cache_control: { type: 'ephemeral' } }],
        },
      ],
    });

    test('a repeated prefix is read from the cache, a new suffix written to it', async () => {
      const first = await client(mock).messages.create(cached('first question') as never);
      expect(first.usage.cache_read_input_tokens).toBe(0);
      expect(first.usage.cache_creation_input_tokens).toBeGreaterThan(200);

      const history = [
        { role: 'user', content: [{ type: 'text', text: 'first question' }] },
        { role: 'assistant', content: first.content },
      ];
      const second = await client(mock).messages.create(
        cached('second question', history) as never,
      );
      // The first request wrote system + first question; cache_control moved but the prefix
      // through "first question" is the same, so all of it is read back.
      expect(second.usage.cache_read_input_tokens).toBe(first.usage.cache_creation_input_tokens);
      expect(second.usage.cache_creation_input_tokens).toBeGreaterThan(0);
      expect(second.usage.cache_creation).toEqual({
        ephemeral_5m_input_tokens: second.usage.cache_creation_input_tokens,
        ephemeral_1h_input_tokens: 0,
      });
    });

    test('no cache_control, or promptCaching false, means no cache tokens; overrides win', async () => {
      const plain = await client(mock).messages.create(body('x'.repeat(400)));
      expect(plain.usage.cache_creation_input_tokens).toBe(0);
      expect(plain.usage.input_tokens).toBeGreaterThan(100);

      const own = await startMockAnthropic({ promptCaching: false });
      try {
        own.enqueue({ content: 'x', usage: { output_tokens: 999, cache_read_input_tokens: 5 } });
        const message = await client(own).messages.create(cached('q') as never);
        expect(message.usage).toMatchObject({
          output_tokens: 999,
          cache_read_input_tokens: 5,
          cache_creation_input_tokens: 0,
        });
        const again = await client(own).messages.create(cached('q') as never);
        expect(again.usage.cache_read_input_tokens).toBe(0);
      } finally {
        await own.close();
      }
    });
  });

  test('requests record headers, the CLI session id and the arrival order', async () => {
    await client(mock).messages.create(body('x'), {
      headers: { 'x-claude-code-session-id': 'abc' },
    });
    const [request] = mock.requests;
    expect(request).toMatchObject({
      seq: expect.any(Number),
      kind: 'conversation',
      stream: false,
      sessionId: 'abc',
    });
    expect(request?.url).toBe('/v1/messages');
    expect(request?.headers.authorization).toBe('Bearer test-key');
    expect(request?.body.messages).toEqual([{ role: 'user', content: 'x' }]);
    mock.reset();
    expect(mock.requests).toHaveLength(0);
  });
});
