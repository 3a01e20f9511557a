/**
 * Server-sent events read by a real parser (eventsource-parser), from a whole body (an injected
 * request) or from a fetch response as it streams.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';

export interface SseEvent {
  event: string;
  data: unknown;
}

function toEvent(message: EventSourceMessage): SseEvent {
  return { event: message.event ?? 'message', data: JSON.parse(message.data) };
}

export function parseSse(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  const parser = createParser({ onEvent: (message) => events.push(toEvent(message)) });
  parser.feed(text);
  return events;
}

/** Reads a streamed response to its end; `onEvent` sees each event as it arrives. */
export async function readSse(
  response: Response,
  onEvent?: (event: SseEvent) => void,
): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  const parser = createParser({
    onEvent: (message) => {
      const event = toEvent(message);
      events.push(event);
      onEvent?.(event);
    },
  });
  if (!response.body) return events;
  const decoder = new TextDecoder();
  for await (const chunk of response.body) {
    parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
  }
  return events;
}
