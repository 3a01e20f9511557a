import type { MessagesRequestBody } from './types.js';

/**
 * Checks the fields the mock relies on, worded like the API's 400s. Returns the problem, or
 * undefined when the body is usable.
 */
export function checkMessagesBody(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return 'The request body must be a JSON object.';
  }
  const b = body as Record<string, unknown>;
  if (typeof b.model !== 'string' || b.model.length === 0) return 'model: Field required';
  if (typeof b.max_tokens !== 'number') return 'max_tokens: Field required';
  if (!Array.isArray(b.messages)) return 'messages: Field required';
  for (let i = 0; i < b.messages.length; i++) {
    const message = b.messages[i] as Record<string, unknown> | null;
    if (typeof message !== 'object' || message === null || typeof message.role !== 'string') {
      return `messages.${i}.role: Field required`;
    }
    if (typeof message.content !== 'string' && !Array.isArray(message.content)) {
      return `messages.${i}.content: Input should be a valid string or list`;
    }
  }
  if (b.stream !== undefined && typeof b.stream !== 'boolean') {
    return 'stream: Input should be a valid boolean';
  }
  return undefined;
}

/**
 * The CLI names a new session with a side request (checked on CLI 2.1.329): same endpoint, same
 * headers and model as the conversation, but `tools: []`, a system prompt that starts "You are
 * naming a coding session", the first prompt wrapped in `<session>` tags, and structured output
 * `output_config.format = { type: 'json_schema', schema: { properties: { title } } }`. The
 * schema is the stable, machine-readable part, so that is what identifies it: a JSON-schema
 * output whose only property is `title`. The CLI skips it under
 * CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 and on resumed sessions that already have a title.
 */
export function isTitleRequest(body: MessagesRequestBody): boolean {
  const config = body.output_config as
    | { format?: { type?: unknown; schema?: unknown } }
    | undefined;
  const format = config?.format;
  if (format?.type !== 'json_schema') return false;
  const properties = (format.schema as { properties?: unknown } | undefined)?.properties;
  if (typeof properties !== 'object' || properties === null) return false;
  const names = Object.keys(properties);
  return names.length === 1 && names[0] === 'title';
}

type Block = Record<string, unknown>;

function blocks(content: string | Block[]): Block[] {
  return typeof content === 'string' ? [{ type: 'text', text: content }] : content;
}

function toolResultText(block: Block): string {
  const content = block.content;
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part: Block) =>
        part.type === 'text' && typeof part.text === 'string' ? part.text : '',
      )
      .filter((text) => text.length > 0)
      .join('\n');
  }
  return '';
}

function blockText(block: Block, skipReminders: boolean): string {
  switch (block.type) {
    case 'text': {
      const text = typeof block.text === 'string' ? block.text : '';
      // The CLI prepends context it generates itself in <system-reminder> blocks; what the user
      // typed is the rest.
      return skipReminders && text.trimStart().startsWith('<system-reminder>') ? '' : text;
    }
    case 'tool_result':
      return toolResultText(block);
    case 'tool_use':
      return `${String(block.name)} ${JSON.stringify(block.input ?? {})}`;
    case 'thinking':
      return typeof block.thinking === 'string' ? block.thinking : '';
    default:
      return '';
  }
}

/** Text of the last `user` message (the CLI may put a `system` message after it). */
export function lastUserText(body: MessagesRequestBody): string {
  for (let i = body.messages.length - 1; i >= 0; i--) {
    const message = body.messages[i];
    if (message?.role !== 'user') continue;
    return blocks(message.content)
      .map((block) => blockText(block, true))
      .filter((text) => text.length > 0)
      .join('\n');
  }
  return '';
}

/** Every text, tool call and tool result of the conversation, one per line. */
export function transcriptText(body: MessagesRequestBody): string {
  const lines: string[] = [];
  for (const message of body.messages) {
    for (const block of blocks(message.content)) {
      const text = blockText(block, false);
      if (text.length > 0) lines.push(text);
    }
  }
  return lines.join('\n');
}
