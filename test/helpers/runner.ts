/**
 * Pieces the runner tests share: the agent options that point the SDK's CLI at the mock
 * Anthropic API, a transcript read back as plain lines, and a mock reply held until released.
 */
import type { Backend } from '../../src/backends/backend.js';
import { tenantProjectKey } from '../../src/backends/registry.js';
import type { TurnEvent } from '../../src/runner/turn.js';
import type { MockAnthropic } from '../../src/testing/index.js';
import { messageText } from './sdk.js';

/** Runner agent options for the mock: its URL, a dummy key, no traffic beyond the model. */
export function mockAgent(mock: MockAnthropic) {
  return {
    env: {
      ANTHROPIC_BASE_URL: mock.url,
      ANTHROPIC_API_KEY: 'mock-key',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    },
  };
}

/** What a promise rejects with; fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

export async function drain(turn: AsyncIterable<TurnEvent>): Promise<TurnEvent[]> {
  const events: TurnEvent[] = [];
  for await (const event of turn) events.push(event);
  return events;
}

/** The user and assistant texts of a session's stored transcript, in order. */
export async function conversation(
  backend: Backend,
  sessionId: string,
  tenant = 'acme',
): Promise<string[]> {
  const entries =
    (await backend.store.load({ projectKey: tenantProjectKey(tenant), sessionId })) ?? [];
  return entries
    .filter((entry) => entry.type === 'user' || entry.type === 'assistant')
    .map((entry) => `${entry.type}: ${messageText((entry as { message?: unknown }).message)}`)
    .filter((line) => !line.endsWith(': '));
}

/** A mock step that answers only when `release()` is called; `reached` resolves when it is asked. */
export function heldReply(text: string) {
  let release: () => void = () => {};
  let reached: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const asked = new Promise<void>((resolve) => {
    reached = resolve;
  });
  const step = async () => {
    reached();
    await gate;
    return text;
  };
  return { step, release: () => release(), reached: asked };
}
