import { setMaxListeners } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { SessionHubError } from '../../core/errors.js';
import {
  type MockAnthropicOptions,
  parseFailure,
  parseOptions,
  parseReply,
  parseStep,
} from './options.js';
import { checkMessagesBody, isTitleRequest, lastUserText, transcriptText } from './request.js';
import type {
  MessagesRequestBody,
  MockClock,
  MockErrorType,
  MockFailure,
  MockMessagesRequest,
  MockOtherRequest,
  MockReply,
  MockRequestKind,
  MockStep,
  WireMessage,
} from './types.js';
import { countInputTokens, estimateOutputTokens, PromptCache } from './usage.js';
import {
  buildMessage,
  errorBody,
  errorTypeForStatus,
  type SseEvent,
  sseFrame,
  streamEvents,
} from './wire.js';

/** A running mock of the Anthropic Messages API. */
export interface MockAnthropic {
  /** Base URL without a trailing slash: pass it as `ANTHROPIC_BASE_URL`. */
  readonly url: string;
  readonly port: number;
  /** Every accepted `POST /v1/messages` request, in arrival order, whatever its kind. */
  readonly requests: readonly MockMessagesRequest[];
  /** The `requests` of kind `conversation`: the ones that consume the script. */
  readonly conversationRequests: readonly MockMessagesRequest[];
  /** Everything else: `HEAD /api/hello`, count_tokens, 400s, 401s, 404s. */
  readonly otherRequests: readonly MockOtherRequest[];
  /** Steps of the script not consumed yet. */
  readonly pending: number;
  /**
   * Resolves with the first `/v1/messages` request, already received or still to come, that
   * matches `predicate` (any request when omitted). Rejects if the mock closes first.
   */
  waitForRequest(
    predicate?: (request: MockMessagesRequest) => boolean,
  ): Promise<MockMessagesRequest>;
  /** Like `waitForRequest`, over `otherRequests`. */
  waitForOtherRequest(
    predicate?: (request: MockOtherRequest) => boolean,
  ): Promise<MockOtherRequest>;
  /** Appends steps to the script. */
  enqueue(...steps: MockStep[]): void;
  /** Makes the next `count` conversation requests fail, ahead of anything already scripted. */
  failNext(count: number, failure: MockFailure): void;
  /**
   * Forgets the script, the recorded requests and the prompt cache. Message and tool-use ids keep
   * counting, so a CLI session that spans a reset never sees the same id twice.
   */
  reset(): void;
  /** Stops listening and cuts open connections, including responses still streaming. */
  close(): Promise<void>;
}

const systemClock: MockClock = {
  now: () => Date.now(),
  sleep: (ms, signal) => delay(ms, undefined, { signal }),
};

const MAX_BODY_BYTES = 64 * 1024 * 1024;

/** Thrown to unwind a request whose client left or whose mock closed; never answered. */
class Aborted extends Error {}

interface Waiter<T> {
  predicate: (request: T) => boolean;
  resolve: (request: T) => void;
  reject: (error: Error) => void;
}

/** Resolves and removes the waiters whose predicate matches `request`. */
function notify<T>(waiters: Waiter<T>[], request: T): void {
  for (let i = waiters.length - 1; i >= 0; i--) {
    const waiter = waiters[i] as Waiter<T>;
    if (!waiter.predicate(request)) continue;
    waiters.splice(i, 1);
    waiter.resolve(request);
  }
}

function defaultReply(request: MockMessagesRequest): string {
  return `Mock reply to: ${request.lastUserText}`;
}

const STATUS_BY_ERROR_TYPE: Record<MockErrorType, number> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  timeout_error: 504,
  api_error: 500,
  overloaded_error: 529,
};

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

class MockAnthropicServer implements MockAnthropic {
  url = '';
  port = 0;
  private recorded: MockMessagesRequest[] = [];
  private others: MockOtherRequest[] = [];
  private script: MockStep[];
  private seq = 0;
  private responseSeq = 0;
  private toolUseSeq = 0;
  private readonly cache: PromptCache;
  private readonly clock: MockClock;
  private readonly server: http.Server;
  private readonly closing = new AbortController();
  private closed: Promise<void> | undefined;
  private readonly messageWaiters: Waiter<MockMessagesRequest>[] = [];
  private readonly otherWaiters: Waiter<MockOtherRequest>[] = [];

  constructor(private readonly options: MockAnthropicOptions) {
    this.script = [...(options.script ?? [])];
    this.cache = new PromptCache(options.promptCaching ?? true);
    this.clock = options.clock ?? systemClock;
    // Every in-flight request listens on this signal; many at once is normal, not a leak.
    setMaxListeners(0, this.closing.signal);
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (error instanceof Aborted) return;
        if (!res.headersSent) {
          const requestId = this.requestId();
          const message = `Mock server error: ${String(error)}`;
          this.sendJson(res, 500, errorBody('api_error', message, requestId), requestId);
        } else {
          res.destroy();
        }
      });
    });
  }

  async listen(): Promise<void> {
    const host = this.options.host ?? '127.0.0.1';
    const port = this.options.port ?? 0;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => {
        reject(
          new SessionHubError(
            'INVALID_OPTION',
            `The mock Anthropic API could not listen on ${host}:${port} (${error.code ?? error.message}). Pass port: 0 to pick a free port.`,
            { host, port },
            { cause: error },
          ),
        );
      };
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    const address = this.server.address() as AddressInfo;
    this.port = address.port;
    const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    this.url = `http://${shownHost}:${address.port}`;
  }

  get requests(): readonly MockMessagesRequest[] {
    return this.recorded;
  }

  get conversationRequests(): readonly MockMessagesRequest[] {
    return this.recorded.filter((request) => request.kind === 'conversation');
  }

  get otherRequests(): readonly MockOtherRequest[] {
    return this.others;
  }

  get pending(): number {
    return this.script.length;
  }

  waitForRequest(
    predicate: (request: MockMessagesRequest) => boolean = () => true,
  ): Promise<MockMessagesRequest> {
    return this.waitFor(this.messageWaiters, this.recorded, predicate);
  }

  waitForOtherRequest(
    predicate: (request: MockOtherRequest) => boolean = () => true,
  ): Promise<MockOtherRequest> {
    return this.waitFor(this.otherWaiters, this.others, predicate);
  }

  private waitFor<T>(
    waiters: Waiter<T>[],
    seen: readonly T[],
    predicate: (request: T) => boolean,
  ): Promise<T> {
    const found = seen.find(predicate);
    if (found) return Promise.resolve(found);
    if (this.closing.signal.aborted) {
      return Promise.reject(new Error('The mock Anthropic API is closed.'));
    }
    return new Promise<T>((resolve, reject) => {
      waiters.push({ predicate, resolve, reject });
    });
  }

  enqueue(...steps: MockStep[]): void {
    const parsed = steps.map((step, i) => parseStep(step, `enqueue()[${i}]`));
    this.script.push(...parsed);
  }

  failNext(count: number, failure: MockFailure): void {
    if (!Number.isInteger(count) || count < 1) {
      throw new SessionHubError(
        'INVALID_OPTION',
        `failNext() count must be a positive integer, got ${String(count)}.`,
        { count },
      );
    }
    const parsed = parseFailure(failure, 'failNext() failure');
    this.script.unshift(...Array.from({ length: count }, () => ({ fail: parsed })));
  }

  reset(): void {
    this.script = [];
    this.recorded = [];
    this.others = [];
    this.cache.clear();
  }

  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      this.closing.abort();
      const closed = new Error('The mock Anthropic API closed before the awaited request came.');
      for (const waiter of this.messageWaiters.splice(0)) waiter.reject(closed);
      for (const waiter of this.otherWaiters.splice(0)) waiter.reject(closed);
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closed;
  }

  private requestId(): string {
    this.responseSeq += 1;
    return `req_mock_${String(this.responseSeq).padStart(6, '0')}`;
  }

  private sendJson(
    res: ServerResponse,
    status: number,
    body: unknown,
    requestId: string,
    headers: Record<string, string> = {},
  ): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      'request-id': requestId,
      ...headers,
    });
    res.end(text);
  }

  private async readBody(req: IncomingMessage): Promise<{ text: string; tooLarge: boolean }> {
    const parts: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) return { text: '', tooLarge: true };
      parts.push(chunk);
    }
    return { text: Buffer.concat(parts).toString('utf8'), tooLarge: false };
  }

  private recordOther(req: IncomingMessage, body: unknown, status: number): void {
    const request: MockOtherRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body,
      status,
      receivedAt: this.clock.now(),
    };
    this.others.push(request);
    notify(this.otherWaiters, request);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { pathname } = new URL(req.url ?? '/', 'http://mock.invalid');
    const { text, tooLarge } = await this.readBody(req);
    let body: unknown;
    if (text.length > 0) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    const route = `${req.method} ${pathname.replace(/\/+$/, '')}`;
    const requestId = this.requestId();
    if (route !== 'POST /v1/messages' && route !== 'POST /v1/messages/count_tokens') {
      this.recordOther(req, body, 404);
      const message = `Not found: ${req.method} ${pathname}`;
      this.sendJson(res, 404, errorBody('not_found_error', message, requestId), requestId);
      return;
    }
    if (tooLarge) {
      this.recordOther(req, undefined, 413);
      this.sendJson(res, 413, errorBody('request_too_large', undefined, requestId), requestId);
      return;
    }
    if (!this.authorised(req)) {
      this.recordOther(req, body, 401);
      const message = 'invalid x-api-key';
      this.sendJson(res, 401, errorBody('authentication_error', message, requestId), requestId);
      return;
    }
    const problem =
      typeof body === 'string' ? 'The request body is not valid JSON.' : checkMessagesBody(body);
    if (problem !== undefined) {
      this.recordOther(req, body, 400);
      this.sendJson(res, 400, errorBody('invalid_request_error', problem, requestId), requestId);
      return;
    }
    const messagesBody = body as MessagesRequestBody;
    if (route === 'POST /v1/messages/count_tokens') {
      this.recordOther(req, body, 200);
      this.sendJson(res, 200, { input_tokens: countInputTokens(messagesBody) }, requestId);
      return;
    }
    await this.answerMessages(req, res, messagesBody, requestId);
  }

  private authorised(req: IncomingMessage): boolean {
    const expected = this.options.apiKey;
    if (expected === undefined) return true;
    const key = headerValue(req.headers['x-api-key']);
    const bearer = headerValue(req.headers.authorization);
    return key === expected || bearer === `Bearer ${expected}`;
  }

  private classify(req: IncomingMessage, body: MessagesRequestBody): MockRequestKind {
    const custom = this.options.classify?.({ body, headers: req.headers });
    if (custom !== undefined) return custom;
    return isTitleRequest(body) ? 'title' : 'conversation';
  }

  private async answerMessages(
    req: IncomingMessage,
    res: ServerResponse,
    body: MessagesRequestBody,
    requestId: string,
  ): Promise<void> {
    this.seq += 1;
    const request: MockMessagesRequest = {
      seq: this.seq,
      kind: this.classify(req, body),
      url: req.url ?? '',
      headers: req.headers,
      body,
      stream: body.stream === true,
      sessionId: headerValue(req.headers['x-claude-code-session-id']),
      receivedAt: this.clock.now(),
      lastUserText: lastUserText(body),
      transcriptText: transcriptText(body),
    };
    this.recorded.push(request);
    notify(this.messageWaiters, request);

    // The step is taken now, synchronously on arrival, so concurrent requests consume the script
    // in arrival order whatever their latency.
    const step = request.kind === 'conversation' ? this.script.shift() : undefined;
    const signal = this.requestSignal(res);

    if (step !== undefined && typeof step === 'object' && 'fail' in step) {
      request.outcome = { type: 'failure', failure: step.fail };
      await this.sleep(this.options.latencyMs ?? 0, signal);
      await this.fail(req, res, request, step.fail, requestId, signal);
      return;
    }

    let reply: MockReply;
    let source: 'script' | 'default' | 'title';
    try {
      if (request.kind === 'title') {
        source = 'title';
        reply = { content: JSON.stringify({ title: this.title(body) }) };
      } else if (step !== undefined) {
        source = 'script';
        reply = parseReply(
          typeof step === 'function' ? await this.until(step(request), signal) : step,
          'scripted reply',
        );
      } else {
        source = 'default';
        reply = parseReply(
          await this.until((this.options.defaultReply ?? defaultReply)(request), signal),
          'defaultReply() result',
        );
      }
    } catch (error) {
      if (error instanceof Aborted) throw error;
      const message = `Mock reply failed: ${error instanceof Error ? error.message : String(error)}`;
      request.outcome = { type: 'mock-error', message };
      this.sendJson(res, 500, errorBody('api_error', message, requestId), requestId);
      return;
    }

    const message = this.message(request, reply, true);
    request.outcome = { type: 'reply', message, source };
    await this.sleep(reply.latencyMs ?? this.options.latencyMs ?? 0, signal);
    if (!request.stream) {
      this.sendJson(res, 200, message, requestId);
      return;
    }
    this.startStream(res, requestId);
    const events = streamEvents(message, this.options.chunkSize ?? 24);
    await this.writeEvents(
      res,
      events,
      reply.chunkDelayMs ?? this.options.chunkDelayMs ?? 0,
      signal,
    );
    res.end();
  }

  private title(body: MessagesRequestBody): string {
    const title = this.options.title ?? 'Mock session';
    return typeof title === 'function' ? title({ body }) : title;
  }

  private message(request: MockMessagesRequest, reply: MockReply, record: boolean): WireMessage {
    return buildMessage(reply, {
      id: `msg_mock_${String(request.seq).padStart(6, '0')}`,
      model: request.body.model,
      nextToolUseId: () => {
        this.toolUseSeq += 1;
        return `toolu_mock_${String(this.toolUseSeq).padStart(6, '0')}`;
      },
      usage: (content) =>
        this.cache.usage(request.body, estimateOutputTokens(content), reply.usage, record),
    });
  }

  /** Aborts when the mock closes or the client goes away, so no timer outlives either. */
  private requestSignal(res: ServerResponse): AbortSignal {
    const controller = new AbortController();
    const abort = () => controller.abort();
    if (this.closing.signal.aborted) abort();
    this.closing.signal.addEventListener('abort', abort, { once: true });
    res.once('close', () => {
      this.closing.signal.removeEventListener('abort', abort);
      abort();
    });
    return controller.signal;
  }

  /** Awaits a reply function's promise, giving up when the mock closes or the client leaves. */
  private until<T>(value: T | Promise<T>, signal: AbortSignal): Promise<T> {
    if (!(value instanceof Promise)) return Promise.resolve(value);
    return new Promise<T>((resolve, reject) => {
      const abort = () => reject(new Aborted());
      if (signal.aborted) abort();
      signal.addEventListener('abort', abort, { once: true });
      value.then(
        (result) => {
          signal.removeEventListener('abort', abort);
          resolve(result);
        },
        (error: unknown) => {
          signal.removeEventListener('abort', abort);
          reject(error);
        },
      );
    });
  }

  private async sleep(ms: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw new Aborted();
    if (ms <= 0) return;
    try {
      await this.clock.sleep(ms, signal);
    } catch (error) {
      if (signal.aborted) throw new Aborted();
      throw error;
    }
    if (signal.aborted) throw new Aborted();
  }

  private startStream(res: ServerResponse, requestId: string): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'request-id': requestId,
    });
  }

  private async writeEvents(
    res: ServerResponse,
    events: SseEvent[],
    gapMs: number,
    signal: AbortSignal,
  ): Promise<void> {
    for (let i = 0; i < events.length; i++) {
      if (i > 0) await this.sleep(gapMs, signal);
      if (signal.aborted) throw new Aborted();
      res.write(sseFrame(events[i] as SseEvent));
    }
  }

  /** Resolves once everything written so far has been handed to the socket. */
  private flushed(res: ServerResponse): Promise<void> {
    return new Promise((resolve) => res.write('', () => resolve()));
  }

  private async fail(
    req: IncomingMessage,
    res: ServerResponse,
    request: MockMessagesRequest,
    failure: MockFailure,
    requestId: string,
    signal: AbortSignal,
  ): Promise<void> {
    if (failure === 'drop' || 'drop' in failure) {
      const mode = failure === 'drop' ? 'mid-stream' : failure.drop;
      if (mode === 'before-response') {
        req.socket.destroy();
        return;
      }
      const afterEvents = failure === 'drop' ? 3 : (failure.afterEvents ?? 3);
      const message = this.message(request, parseReply(defaultReply(request), 'drop'), false);
      if (request.stream) {
        this.startStream(res, requestId);
        const events = streamEvents(message, this.options.chunkSize ?? 24).slice(0, afterEvents);
        await this.writeEvents(res, events, this.options.chunkDelayMs ?? 0, signal);
      } else {
        const text = JSON.stringify(message);
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
          'request-id': requestId,
        });
        res.write(text.slice(0, Math.floor(text.length / 2)));
      }
      // Destroying at once could discard bytes still buffered in the response; the point of a
      // mid-stream drop is that the client sees a partial answer and then the connection die.
      await this.flushed(res);
      req.socket.destroy();
      return;
    }
    if ('streamError' in failure) {
      if (!request.stream) {
        const status = STATUS_BY_ERROR_TYPE[failure.streamError];
        this.sendJson(
          res,
          status,
          errorBody(failure.streamError, failure.message, requestId),
          requestId,
        );
        return;
      }
      const message = this.message(
        request,
        parseReply(defaultReply(request), 'stream error'),
        false,
      );
      this.startStream(res, requestId);
      const events = streamEvents(message, this.options.chunkSize ?? 24).slice(
        0,
        failure.afterEvents ?? 1,
      );
      const { request_id: _, ...error } = errorBody(
        failure.streamError,
        failure.message,
        requestId,
      );
      events.push({ event: 'error', data: error });
      await this.writeEvents(res, events, this.options.chunkDelayMs ?? 0, signal);
      res.end();
      return;
    }
    const headers: Record<string, string> = {};
    if (failure.retryAfterSeconds !== undefined)
      headers['retry-after'] = String(failure.retryAfterSeconds);
    if (failure.shouldRetry !== undefined) headers['x-should-retry'] = String(failure.shouldRetry);
    const type = failure.type ?? errorTypeForStatus(failure.status);
    this.sendJson(
      res,
      failure.status,
      errorBody(type, failure.message, requestId),
      requestId,
      headers,
    );
  }
}

/**
 * Starts a local mock of the Anthropic Messages API for offline tests. Point the Agent SDK (or
 * any client) at `mock.url` through `ANTHROPIC_BASE_URL`.
 *
 *   const mock = await startMockAnthropic({ script: ['Hello!'] });
 *   // ... query({ prompt, options: { env: { ...process.env, ANTHROPIC_BASE_URL: mock.url } } })
 *   await mock.close();
 */
export async function startMockAnthropic(
  options: MockAnthropicOptions = {},
): Promise<MockAnthropic> {
  const server = new MockAnthropicServer(parseOptions(options));
  await server.listen();
  return server;
}
