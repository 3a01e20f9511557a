/**
 * The Messages API wire format: assistant messages, the SSE event sequence of a streamed message,
 * and the error JSON. Pure functions; the server decides when each piece is written.
 */
import { createHash } from 'node:crypto';
import type {
  MockErrorType,
  MockReply,
  MockStopReason,
  WireContentBlock,
  WireMessage,
  WireUsage,
} from './types.js';

export interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

export function sseFrame({ event, data }: SseEvent): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export function buildMessage(
  reply: MockReply,
  context: {
    id: string;
    model: string;
    nextToolUseId: () => string;
    usage: (content: WireContentBlock[]) => WireUsage;
  },
): WireMessage {
  const blocks =
    typeof reply.content === 'string'
      ? [{ type: 'text' as const, text: reply.content }]
      : reply.content;
  const content = blocks.map((block): WireContentBlock => {
    if (block.type === 'text') return { type: 'text', text: block.text };
    if (block.type === 'tool_use') {
      return {
        type: 'tool_use',
        id: block.id ?? context.nextToolUseId(),
        name: block.name,
        input: block.input ?? {},
      };
    }
    return {
      type: 'thinking',
      thinking: block.thinking,
      signature: block.signature ?? placeholderSignature(block.thinking),
    };
  });
  const stopReason: MockStopReason =
    reply.stopReason ??
    (content.some((block) => block.type === 'tool_use') ? 'tool_use' : 'end_turn');
  return {
    id: reply.id ?? context.id,
    type: 'message',
    role: 'assistant',
    model: reply.model ?? context.model,
    content,
    stop_reason: stopReason,
    stop_sequence: reply.stopSequence ?? null,
    usage: context.usage(content),
  };
}

function placeholderSignature(thinking: string): string {
  return createHash('sha256').update(`mock-thinking:${thinking}`).digest('base64');
}

function chunks(text: string, size: number): string[] {
  if (text.length === 0) return [''];
  const out: string[] = [];
  // Split on code points so no chunk ends in half a surrogate pair.
  const points = Array.from(text);
  for (let i = 0; i < points.length; i += size) out.push(points.slice(i, i + size).join(''));
  return out;
}

/**
 * The events of one streamed message, in the order the API sends them: message_start, then per
 * block content_block_start, deltas and content_block_stop (a ping after the first block's
 * start), then message_delta with the stop reason and final usage, then message_stop.
 */
export function streamEvents(message: WireMessage, chunkSize: number): SseEvent[] {
  const { usage } = message;
  const events: SseEvent[] = [
    {
      event: 'message_start',
      data: {
        type: 'message_start',
        message: {
          ...message,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { ...usage, output_tokens: 1 },
        },
      },
    },
  ];
  message.content.forEach((block, index) => {
    const start =
      block.type === 'text'
        ? { type: 'text', text: '' }
        : block.type === 'tool_use'
          ? { type: 'tool_use', id: block.id, name: block.name, input: {} }
          : { type: 'thinking', thinking: '', signature: '' };
    events.push({
      event: 'content_block_start',
      data: { type: 'content_block_start', index, content_block: start },
    });
    if (index === 0) events.push({ event: 'ping', data: { type: 'ping' } });
    const delta = (value: Record<string, unknown>) =>
      events.push({
        event: 'content_block_delta',
        data: { type: 'content_block_delta', index, delta: value },
      });
    if (block.type === 'text') {
      for (const text of chunks(block.text, chunkSize)) delta({ type: 'text_delta', text });
    } else if (block.type === 'tool_use') {
      const json = Object.keys(block.input).length === 0 ? '' : JSON.stringify(block.input);
      for (const partial of chunks(json, chunkSize))
        delta({ type: 'input_json_delta', partial_json: partial });
    } else {
      for (const thinking of chunks(block.thinking, chunkSize))
        delta({ type: 'thinking_delta', thinking });
      delta({ type: 'signature_delta', signature: block.signature });
    }
    events.push({ event: 'content_block_stop', data: { type: 'content_block_stop', index } });
  });
  events.push({
    event: 'message_delta',
    data: {
      type: 'message_delta',
      delta: { stop_reason: message.stop_reason, stop_sequence: message.stop_sequence },
      usage: {
        input_tokens: usage.input_tokens,
        cache_creation_input_tokens: usage.cache_creation_input_tokens,
        cache_read_input_tokens: usage.cache_read_input_tokens,
        output_tokens: usage.output_tokens,
      },
    },
  });
  events.push({ event: 'message_stop', data: { type: 'message_stop' } });
  return events;
}

const TYPE_BY_STATUS: Record<number, MockErrorType> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  504: 'timeout_error',
  529: 'overloaded_error',
};

const DEFAULT_MESSAGE: Record<MockErrorType, string> = {
  invalid_request_error: 'Invalid request.',
  authentication_error: 'invalid x-api-key',
  billing_error: 'Your credit balance is too low.',
  permission_error: 'Your API key does not have permission to use the specified resource.',
  not_found_error: 'The requested resource could not be found.',
  request_too_large: 'Request exceeds the maximum allowed number of bytes.',
  rate_limit_error: 'Number of request tokens has exceeded your per-minute rate limit.',
  timeout_error: 'Request timed out.',
  api_error: 'Internal server error',
  overloaded_error: 'Overloaded',
};

export function errorTypeForStatus(status: number): MockErrorType {
  return TYPE_BY_STATUS[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
}

/** The API's error JSON: `{ type: 'error', error: { type, message }, request_id }`. */
export function errorBody(
  type: MockErrorType,
  message: string | undefined,
  requestId: string,
): { type: 'error'; error: { type: MockErrorType; message: string }; request_id: string } {
  return {
    type: 'error',
    error: { type, message: message ?? DEFAULT_MESSAGE[type] },
    request_id: requestId,
  };
}
