import { describe, expect, test } from 'vitest';
import {
  emptyUsageState,
  foldUsage,
  forkUsageState,
  type UsageState,
  usageTotals,
} from '../../src/core/usage.js';
import { decodeUsageState, encodeUsageState } from '../../src/core/usage-codec.js';

const START = 1_700_000_000_000;

function costState(cost: number, inputTokens: number, startTime = START, model = 'claude-test') {
  return {
    type: 'cost-state',
    totalCostUSD: cost,
    totalDuration: 100,
    totalAPIDuration: 50,
    startTime,
    modelUsage: { [model]: { inputTokens, outputTokens: 2, costUSD: cost } },
  };
}

function assistant(id: string, input: number, timestamp = '2026-01-01T00:00:00.000Z') {
  return {
    type: 'assistant',
    uuid: `uuid-${id}`,
    timestamp,
    message: { id, model: 'claude-test', usage: { input_tokens: input, output_tokens: 1 } },
  };
}

/** States that exercise every part of the encoding. */
function states(): Record<string, UsageState> {
  const oneTurn = foldUsage(emptyUsageState(), [assistant('m1', 5), costState(0.01, 5)]).state;
  const pending = foldUsage(oneTurn, [assistant('m2', 7)]).state;
  // A restarted counter: its per-model figures differ from the counted ones.
  const restarted = foldUsage(pending, [costState(0.002, 3, START + 1, 'haiku')]).state;
  const fork = forkUsageState(pending);
  const unknownCost = foldUsage(emptyUsageState(), [
    { ...costState(0.5, 9), hasUnknownModelCost: true },
  ]).state;
  return { empty: emptyUsageState(), oneTurn, pending, restarted, fork, unknownCost };
}

describe('usage state codec', () => {
  test('decoding an encoded state gives back an equal state', () => {
    for (const [name, state] of Object.entries(states())) {
      const decoded = decodeUsageState(encodeUsageState(state));
      expect(decoded, name).toEqual(state);
      expect(usageTotals(decoded), name).toEqual(usageTotals(state));
      // And folding goes on from it exactly as from the original.
      const next = [assistant('m9', 4), costState(0.05, 20)];
      expect(foldUsage(decoded, next), name).toEqual(foldUsage(state, next));
    }
  });

  test('the plain JSON that earlier versions stored still decodes', () => {
    for (const [name, state] of Object.entries(states())) {
      expect(decodeUsageState(JSON.stringify(state)), name).toEqual(state);
    }
  });

  test('the stored text is less than half the plain JSON of a session with turns', () => {
    const { pending } = states();
    const text = encodeUsageState(pending as UsageState);
    expect(text.length).toBeLessThan(JSON.stringify(pending).length / 2);
  });

  test('fields it does not know are kept, as JSON keeps them', () => {
    const state = { ...emptyUsageState(), laterField: { a: [1, 2] } } as UsageState;
    expect(decodeUsageState(encodeUsageState(state))).toEqual(state);
    const withUndefined = { ...state, nothing: undefined } as UsageState;
    expect(decodeUsageState(encodeUsageState(withUndefined))).toEqual(state);
  });

  test('any model name and message id survive, quotes and all', () => {
    const model = 'odd "model" \\ ünïcode\n';
    const state = foldUsage(emptyUsageState(), [
      {
        type: 'assistant',
        uuid: 'u1',
        timestamp: '2026-01-01T00:00:00.000Z',
        message: { id: 'id "1"', model, usage: { input_tokens: 3 } },
      },
      costState(0.25, 3, START, model),
    ]).state;
    const text = encodeUsageState(state);
    expect(decodeUsageState(text)).toEqual(state);
    expect(decodeUsageState(text).counted.byModel[model]?.costUsd).toBe(0.25);
  });
});

describe('usage state codec: strings', () => {
  test('strings at the edges of plain ASCII are written as JSON writes them', () => {
    const edges = [' ', '!', '#', '[', ']', '~', '/', '<', '\u007f', '\u0080', '"', '\\', '\t', ''];
    const state = emptyUsageState();
    state.recentCostStates = edges.map((c) => `~a${c}b`);
    state.pendingIds = edges.map((c) => `msg${c}`);
    state.coveredIds = [...edges];
    state.lastMessageId = 'last\u2028id';
    state.copies = { throughId: 'x"y', notAfter: 5 };
    state.pending = Object.fromEntries(
      edges.map((c, i) => [
        `model${c}`,
        {
          inputTokens: i,
          outputTokens: 1,
          cacheReadInputTokens: 0,
          cacheCreationInputTokens: 0,
        },
      ]),
    );
    const text = encodeUsageState(state);
    // Each string appears exactly as JSON.stringify() writes it.
    for (const id of [...state.pendingIds, ...state.coveredIds, state.lastMessageId]) {
      expect(text).toContain(JSON.stringify(id));
    }
    expect(decodeUsageState(text)).toEqual(state);
  });
});
