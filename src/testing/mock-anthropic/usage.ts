import { createHash } from 'node:crypto';
import type {
  MessagesRequestBody,
  MockUsageOverride,
  WireContentBlock,
  WireUsage,
} from './types.js';

/** About four bytes of UTF-8 per token: close enough to the real tokenizer for tests and costs. */
export function estimateTokens(text: string): number {
  return Math.ceil(Buffer.byteLength(text, 'utf8') / 4);
}

export function estimateOutputTokens(content: WireContentBlock[]): number {
  let tokens = 0;
  for (const block of content) {
    if (block.type === 'text') tokens += estimateTokens(block.text);
    else if (block.type === 'thinking') tokens += estimateTokens(block.thinking);
    else tokens += estimateTokens(block.name) + estimateTokens(JSON.stringify(block.input));
  }
  return Math.max(1, tokens);
}

interface Segment {
  text: string;
  cacheControl: { ttl?: unknown } | undefined;
}

/**
 * The prompt in the order the API caches it (tools, then system, then messages), one segment per
 * block. `cache_control` is taken out of the text: the CLI moves the breakpoint to the newest
 * message every turn, and the marker must not change what counts as the same prefix.
 */
function segments(body: MessagesRequestBody): Segment[] {
  const out: Segment[] = [];
  const add = (item: unknown, prefix = '') => {
    if (typeof item !== 'object' || item === null) {
      out.push({ text: prefix + JSON.stringify(item), cacheControl: undefined });
      return;
    }
    const { cache_control, ...rest } = item as Record<string, unknown>;
    out.push({
      text: prefix + JSON.stringify(rest),
      cacheControl:
        typeof cache_control === 'object' && cache_control !== null
          ? (cache_control as { ttl?: unknown })
          : undefined,
    });
  };
  for (const tool of body.tools ?? []) add(tool);
  if (typeof body.system === 'string') add({ type: 'text', text: body.system });
  else for (const block of body.system ?? []) add(block);
  for (const message of body.messages) {
    const content =
      typeof message.content === 'string'
        ? [{ type: 'text', text: message.content }]
        : message.content;
    content.forEach((block, i) => {
      add(block, i === 0 ? `${message.role}:` : '');
    });
  }
  return out;
}

/** How far before a breakpoint the API looks for an earlier cached prefix, in blocks. */
const LOOKBACK_BLOCKS = 20;

/**
 * Simulated prompt caching for one mock server, after the API's rules: each `cache_control`
 * breakpoint writes the prefix that ends there, and reads the longest prefix already written
 * that ends at one of the 20 block boundaries before it (so a breakpoint that moved forward by a
 * turn still hits). Unlike the real API there is no minimum cacheable length and entries never
 * expire, which keeps the numbers deterministic.
 */
export class PromptCache {
  private readonly written = new Set<string>();

  constructor(private readonly enabled: boolean) {}

  clear(): void {
    this.written.clear();
  }

  /** Usage of a request; `record` false leaves the cache as it was (for answers never finished). */
  usage(
    body: MessagesRequestBody,
    outputTokens: number,
    override: MockUsageOverride = {},
    record = true,
  ): WireUsage {
    const hash = createHash('sha256');
    let total = 0;
    const boundaries: Array<{ key: string; tokens: number }> = [];
    const breakpoints: Array<{ index: number; oneHour: boolean }> = [];
    for (const segment of segments(body)) {
      hash.update(segment.text);
      total += estimateTokens(segment.text);
      if (this.enabled) boundaries.push({ key: hash.copy().digest('hex'), tokens: total });
      if (segment.cacheControl) {
        breakpoints.push({
          index: boundaries.length - 1,
          oneHour: segment.cacheControl.ttl === '1h',
        });
      }
    }
    let read = 0;
    let cached = 0;
    let oneHour = false;
    const last = breakpoints.at(-1);
    if (this.enabled && last) {
      for (const { index } of breakpoints) {
        for (let i = index; i >= Math.max(0, index - LOOKBACK_BLOCKS); i--) {
          const boundary = boundaries[i] as { key: string; tokens: number };
          if (this.written.has(boundary.key)) {
            read = Math.max(read, boundary.tokens);
            break;
          }
        }
      }
      cached = (boundaries[last.index] as { tokens: number }).tokens;
      oneHour = last.oneHour;
      if (record) {
        for (const { index } of breakpoints)
          this.written.add((boundaries[index] as { key: string }).key);
      }
    }
    const creation = override.cache_creation_input_tokens ?? cached - read;
    return {
      input_tokens: override.input_tokens ?? Math.max(1, total - cached),
      output_tokens: override.output_tokens ?? outputTokens,
      cache_creation_input_tokens: creation,
      cache_read_input_tokens: override.cache_read_input_tokens ?? read,
      cache_creation: {
        ephemeral_5m_input_tokens: oneHour ? 0 : creation,
        ephemeral_1h_input_tokens: oneHour ? creation : 0,
      },
      service_tier: 'standard',
    };
  }
}

/** What `count_tokens` answers: the whole prompt, cached or not. */
export function countInputTokens(body: MessagesRequestBody): number {
  let total = 0;
  for (const segment of segments(body)) total += estimateTokens(segment.text);
  return Math.max(1, total);
}
