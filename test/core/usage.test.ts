/**
 * The usage fold: hand-made entries for each rule, then real transcripts written by the bundled
 * CLI against the mock API (a session resumed across hosts, a helper fork, a `forkSession: true`
 * query fork), folded batch by batch as a store would see them.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { forkSession, type SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  emptyUsageState,
  foldUsage,
  forkUsageState,
  type TokenUsage,
  TURN_USAGE_ENTRY,
  type UsageDelta,
  type UsageState,
  usageTotals,
} from '../../src/core/usage.js';
import { type Backend, openBackend } from '../../src/index.js';
import { type MockAnthropic, RecordingStore, startMockAnthropic } from '../../src/testing/index.js';
import { runTurn, TempDirs, type TurnResult } from '../helpers/sdk.js';

const MODEL = 'claude-test';
const START = 1_700_000_000_000;

interface CostStateInput {
  cost: number;
  duration?: number;
  api?: number;
  startTime?: number;
  models?: Record<string, Partial<TokenUsage> & { costUsd?: number }>;
}

/** A cost-state as CLI 2.1.329 writes it: cumulative figures for the session. */
function costState(input: CostStateInput): Record<string, unknown> {
  const models = input.models ?? { [MODEL]: { inputTokens: 10, costUsd: input.cost } };
  const modelUsage: Record<string, unknown> = {};
  for (const [model, usage] of Object.entries(models)) {
    modelUsage[model] = {
      inputTokens: usage.inputTokens ?? 0,
      outputTokens: usage.outputTokens ?? 0,
      thinkingTokens: 0,
      cacheReadInputTokens: usage.cacheReadInputTokens ?? 0,
      cacheCreationInputTokens: usage.cacheCreationInputTokens ?? 0,
      webSearchRequests: 0,
      costUSD: usage.costUsd ?? 0,
    };
  }
  return {
    type: 'cost-state',
    sessionId: 'session',
    totalCostUSD: input.cost,
    totalAPIDuration: input.api ?? 0,
    totalAPIDurationWithoutRetries: input.api ?? 0,
    totalToolDuration: 0,
    totalDuration: input.duration ?? 0,
    startTime: input.startTime ?? START,
    modelUsage,
    hasUnknownModelCost: false,
  };
}

let uuids = 0;

function assistant(
  id: string,
  usage: { input?: number; output?: number; cacheRead?: number; cacheCreation?: number },
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  uuids += 1;
  return {
    type: 'assistant',
    uuid: `uuid-${uuids}`,
    timestamp: '2026-01-01T00:00:00.000Z',
    message: {
      id,
      type: 'message',
      role: 'assistant',
      model: MODEL,
      content: [{ type: 'text', text: 'hello' }],
      usage: {
        input_tokens: usage.input ?? 0,
        output_tokens: usage.output ?? 0,
        cache_read_input_tokens: usage.cacheRead ?? 0,
        cache_creation_input_tokens: usage.cacheCreation ?? 0,
      },
    },
    ...extra,
  };
}

function tokens(partial: Partial<TokenUsage> = {}): TokenUsage {
  return {
    inputTokens: 0,
    outputTokens: 0,
    cacheReadInputTokens: 0,
    cacheCreationInputTokens: 0,
    ...partial,
  };
}

const NOTHING: UsageDelta = {
  costUsd: 0,
  tokens: { inputTokens: 0, outputTokens: 0, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 },
  turns: 0,
  durationMs: 0,
  apiDurationMs: 0,
  byModel: {},
};

/** Folds every batch twice in a row, as retried appends deliver them: the repeats add nothing. */
function foldRetried(state: UsageState, batches: readonly (readonly unknown[])[]): UsageState {
  const folded = foldAll(
    state,
    batches.flatMap((batch) => [batch, batch]),
  );
  for (const [i, delta] of folded.deltas.entries()) {
    if (i % 2 === 1) expect(delta).toEqual(NOTHING);
  }
  return folded.state;
}

/** Folds batches one after the other; returns the final state and the sum of the deltas. */
function foldAll(
  state: UsageState,
  batches: readonly (readonly unknown[])[],
): { state: UsageState; costUsd: number; turns: number; deltas: UsageDelta[] } {
  let costUsd = 0;
  let turns = 0;
  const deltas: UsageDelta[] = [];
  for (const batch of batches) {
    const folded = foldUsage(state, batch);
    state = folded.state;
    costUsd += folded.delta.costUsd;
    turns += folded.delta.turns;
    deltas.push(folded.delta);
  }
  return { state, costUsd, turns, deltas };
}

describe('foldUsage on hand-made entries', () => {
  test('an empty state has no usage', () => {
    expect(usageTotals(emptyUsageState())).toEqual({
      tokens: tokens(),
      costUsd: 0,
      turns: 0,
      durationMs: 0,
      apiDurationMs: 0,
      byModel: {},
      pendingTokens: tokens(),
      hasUnknownModelCost: false,
    });
  });

  test('each cost-state is a turn whose spend is the difference of the cumulative totals', () => {
    const first = foldUsage(emptyUsageState(), [
      costState({
        cost: 0.05,
        duration: 400,
        api: 30,
        models: { [MODEL]: { inputTokens: 1, outputTokens: 5, costUsd: 0.05 } },
      }),
    ]);
    expect(first.delta).toEqual({
      costUsd: 0.05,
      tokens: tokens({ inputTokens: 1, outputTokens: 5 }),
      turns: 1,
      durationMs: 400,
      apiDurationMs: 30,
      byModel: { [MODEL]: { ...tokens({ inputTokens: 1, outputTokens: 5 }), costUsd: 0.05 } },
    });
    const second = foldUsage(first.state, [
      costState({
        cost: 0.06,
        duration: 600,
        api: 50,
        models: {
          [MODEL]: { inputTokens: 2, outputTokens: 10, costUsd: 0.055 },
          haiku: { inputTokens: 100, costUsd: 0.005 },
        },
      }),
    ]);
    expect(second.delta).toEqual({
      costUsd: 0.01,
      tokens: tokens({ inputTokens: 101, outputTokens: 5 }),
      turns: 1,
      durationMs: 200,
      apiDurationMs: 20,
      byModel: {
        [MODEL]: { ...tokens({ inputTokens: 1, outputTokens: 5 }), costUsd: 0.005 },
        haiku: { ...tokens({ inputTokens: 100 }), costUsd: 0.005 },
      },
    });
    expect(usageTotals(second.state)).toMatchObject({
      costUsd: 0.06,
      turns: 2,
      durationMs: 600,
      apiDurationMs: 50,
      tokens: tokens({ inputTokens: 102, outputTokens: 10 }),
    });
  });

  test('a duplicate cost-state adds nothing and is not a turn', () => {
    const one = costState({ cost: 0.05, duration: 400 });
    const two = costState({ cost: 0.07, duration: 700 });
    const { state, costUsd, turns, deltas } = foldAll(emptyUsageState(), [
      [one],
      [one],
      [one, two],
      [two],
    ]);
    expect(costUsd).toBe(0.07);
    expect(turns).toBe(2);
    expect(deltas[1]?.costUsd).toBe(0);
    expect(deltas[1]?.turns).toBe(0);
    expect(deltas[3]?.turns).toBe(0);
    expect(usageTotals(state)).toMatchObject({ costUsd: 0.07, turns: 2, durationMs: 700 });
  });

  test('a retried cost-state is known by the digest earlier versions stored, too', () => {
    const entry = costState({
      cost: 0.05,
      duration: 400,
      api: 30,
      models: {
        [MODEL]: { inputTokens: 10, outputTokens: 5, costUsd: 0.04 },
        haiku: { inputTokens: 3, costUsd: 0.01 },
      },
    });
    const folded = foldUsage(emptyUsageState(), [entry]);
    expect(folded.delta.turns).toBe(1);
    const [digest] = folded.state.recentCostStates;
    expect(digest).toMatch(/^~[A-Za-z0-9_-]{12}$/);
    // The same state as an earlier version stored it: that cost-state's digest was 72 bits of
    // SHA-256 (this value). Its retry, folded now, still adds nothing; a new cost-state does.
    const stored: UsageState = { ...folded.state, recentCostStates: ['TAlirRmA7xtn'] };
    expect(foldUsage(stored, [entry]).delta).toEqual(NOTHING);
    const withoutStart = { ...entry, startTime: undefined };
    const legacy = foldUsage(emptyUsageState(), [withoutStart]).state;
    expect(
      foldUsage({ ...legacy, recentCostStates: ['gOXaEHOqcgFL'] }, [withoutStart]).delta,
    ).toEqual(NOTHING);
    const next = foldUsage(stored, [costState({ cost: 0.07, duration: 500 })]);
    expect(next.delta.turns).toBe(1);
    expect(next.state.recentCostStates).toEqual(['TAlirRmA7xtn', expect.stringMatching(/^~/)]);
  });

  test('a cost-state whose totals go down restarts the counter: what was counted stays', () => {
    const { state, costUsd, deltas } = foldAll(emptyUsageState(), [
      [costState({ cost: 0.05, duration: 400 })],
      [costState({ cost: 0.002, duration: 300, startTime: START })],
      [costState({ cost: 0.003, duration: 500, startTime: START })],
    ]);
    expect(deltas.map((d) => d.costUsd)).toEqual([0.05, 0.002, 0.001]);
    expect(costUsd).toBeCloseTo(0.053, 12);
    expect(usageTotals(state)).toMatchObject({ costUsd: 0.053, turns: 3, durationMs: 900 });
  });

  test('a new startTime restarts the counter even when the totals went up', () => {
    const first = foldUsage(emptyUsageState(), [costState({ cost: 0.002, duration: 400 })]);
    const second = foldUsage(first.state, [
      costState({ cost: 0.05, duration: 300, startTime: START + 60_000 }),
    ]);
    expect(second.delta).toMatchObject({ costUsd: 0.05, turns: 1, durationMs: 300 });
    expect(usageTotals(second.state).costUsd).toBe(0.052);
  });

  test('tokens after the last cost-state are pending until a cost-state replaces them', () => {
    const afterTurn = foldUsage(emptyUsageState(), [
      costState({ cost: 0.05, models: { [MODEL]: { inputTokens: 10, costUsd: 0.05 } } }),
    ]).state;
    // A turn that died before its cost-state: its tokens show, without a cost or a turn, and
    // nothing is charged for them (the delta holds counted figures only).
    const died = foldUsage(afterTurn, [assistant('msg_a', { input: 3, output: 7 })]);
    expect(died.delta).toEqual(NOTHING);
    expect(usageTotals(died.state)).toMatchObject({
      tokens: tokens({ inputTokens: 13, outputTokens: 7 }),
      pendingTokens: tokens({ inputTokens: 3, outputTokens: 7 }),
      turns: 1,
    });
    // The next turn's cost-state is authoritative: it counts what the SDK counted, and the
    // delta is what it counted, whatever the pending estimate was.
    const next = foldUsage(died.state, [
      assistant('msg_b', { input: 4, output: 2 }),
      costState({
        cost: 0.06,
        models: { [MODEL]: { inputTokens: 15, outputTokens: 3, costUsd: 0.06 } },
      }),
    ]);
    expect(next.delta.tokens).toEqual(tokens({ inputTokens: 15 - 10, outputTokens: 3 }));
    expect(next.delta.costUsd).toBe(0.01);
    expect(next.delta.turns).toBe(1);
    expect(usageTotals(next.state)).toMatchObject({
      tokens: tokens({ inputTokens: 15, outputTokens: 3 }),
      pendingTokens: tokens(),
      turns: 2,
    });
  });

  test('one message id is counted once, within a turn and when a batch is retried', () => {
    const toolTurn = [
      assistant('msg_1', { input: 5, output: 9, cacheRead: 100 }),
      assistant('msg_1', { input: 5, output: 9, cacheRead: 100 }),
      { type: 'user', uuid: 'tool-result' },
      assistant('msg_2', { input: 1, output: 4, cacheCreation: 20 }),
    ];
    const once = foldUsage(emptyUsageState(), toolTurn);
    const expected = tokens({
      inputTokens: 6,
      outputTokens: 13,
      cacheReadInputTokens: 100,
      cacheCreationInputTokens: 20,
    });
    expect(usageTotals(once.state).pendingTokens).toEqual(expected);
    const retried = foldUsage(once.state, toolTurn);
    expect(retried.delta.tokens).toEqual(tokens());
    expect(usageTotals(retried.state).tokens).toEqual(expected);

    // A batch that ended with its cost-state, delivered again.
    const withCost = [...toolTurn, costState({ cost: 0.01 })];
    const first = foldUsage(emptyUsageState(), withCost);
    const again = foldUsage(first.state, withCost);
    expect(again.delta).toEqual({
      costUsd: 0,
      tokens: tokens(),
      turns: 0,
      durationMs: 0,
      apiDurationMs: 0,
      byModel: {},
    });
    expect(again.state).toEqual(first.state);
  });

  test('malformed entries are ignored, never thrown on', () => {
    const good = costState({ cost: 0.01 });
    const junk: unknown[] = [
      null,
      undefined,
      42,
      'cost-state',
      [good],
      {},
      { type: 'cost-state' },
      { ...good, totalCostUSD: '0.5' },
      { ...good, totalCostUSD: Number.NaN },
      { ...good, totalCostUSD: -1 },
      { ...good, modelUsage: 'lots' },
      { ...good, modelUsage: undefined },
      { type: 'assistant' },
      { type: 'assistant', message: null },
      { type: 'assistant', message: { id: 'msg_x', model: MODEL } },
      { type: 'assistant', message: { id: 7, model: MODEL, usage: { input_tokens: 5 } } },
      { type: 'assistant', message: { id: 'msg_y', usage: { input_tokens: 5 } } },
    ];
    const folded = foldUsage(emptyUsageState(), junk);
    expect(usageTotals(folded.state)).toEqual(usageTotals(emptyUsageState()));
    expect(() => foldUsage(emptyUsageState(), 'entries' as unknown as unknown[])).not.toThrow();

    // Fields of the wrong type inside an otherwise usable entry count as zero.
    const partly = foldUsage(emptyUsageState(), [
      assistant('msg_z', { input: 2 }, {}),
      {
        type: 'assistant',
        uuid: 'u-strings',
        message: {
          id: 'msg_s',
          model: MODEL,
          usage: { input_tokens: '9', output_tokens: 3, cache_read_input_tokens: null },
        },
      },
      {
        ...good,
        totalDuration: 'long',
        modelUsage: { [MODEL]: { inputTokens: '10', outputTokens: 4, costUSD: 0.01 }, bad: 1 },
      },
    ]);
    expect(usageTotals(partly.state)).toMatchObject({
      costUsd: 0.01,
      turns: 1,
      durationMs: 0,
      tokens: tokens({ outputTokens: 4 }),
    });
  });

  test('cost sums stay exact to 1e-9 over many turns', () => {
    let state = emptyUsageState();
    let total = 0;
    let cumulative = 0;
    for (let turn = 1; turn <= 1000; turn++) {
      cumulative += 0.1;
      const folded = foldUsage(state, [costState({ cost: cumulative, duration: turn })]);
      state = folded.state;
      expect(folded.delta.costUsd).toBe(0.1);
      total += folded.delta.costUsd;
    }
    expect(usageTotals(state).costUsd).toBe(100);
    expect(usageTotals(state).byModel[MODEL]?.costUsd).toBe(100);
    expect(total).toBeCloseTo(100, 9);
  });

  test('the state is plain JSON and folding never changes its argument', () => {
    const batches = [
      [assistant('msg_1', { input: 3 }), costState({ cost: 0.01, duration: 1 })],
      [assistant('msg_2', { input: 4 })],
      [costState({ cost: 0.03, duration: 2 })],
    ];
    let direct = emptyUsageState();
    let viaJson = emptyUsageState();
    for (const batch of batches) {
      const before = structuredClone(direct);
      direct = foldUsage(direct, batch).state;
      viaJson = JSON.parse(JSON.stringify(foldUsage(viaJson, batch).state)) as UsageState;
      expect(foldUsage(before, []).state).toEqual(before);
    }
    expect(viaJson).toEqual(direct);
    const state = emptyUsageState();
    foldUsage(state, batches.flat());
    expect(state).toEqual(emptyUsageState());
  });

  test('the delta of every fold is exactly the change of the counted totals (no pending tokens)', () => {
    const batches: unknown[][] = [
      [assistant('msg_1', { input: 3, output: 1 })],
      [costState({ cost: 0.02, duration: 5, models: { [MODEL]: { inputTokens: 4 } } })],
      [assistant('msg_2', { input: 8 }), assistant('msg_2', { input: 8 })],
      [costState({ cost: 0.01, duration: 3, startTime: START + 1 })],
      [costState({ cost: 0.01, duration: 3, startTime: START + 1 })],
    ];
    /** The totals without pending tokens: what cost-states counted. */
    const counted = (state: UsageState) => {
      const totals = usageTotals(state);
      const countedTokens = tokens();
      for (const field of Object.keys(countedTokens) as Array<keyof TokenUsage>) {
        countedTokens[field] = totals.tokens[field] - totals.pendingTokens[field];
      }
      return { ...totals, tokens: countedTokens };
    };
    let state = emptyUsageState();
    const deltas: UsageDelta[] = [];
    for (const batch of batches) {
      const before = counted(state);
      const folded = foldUsage(state, batch);
      const after = counted(folded.state);
      expect(folded.delta.costUsd).toBeCloseTo(after.costUsd - before.costUsd, 12);
      expect(folded.delta.turns).toBe(after.turns - before.turns);
      expect(folded.delta.durationMs).toBe(after.durationMs - before.durationMs);
      for (const field of Object.keys(folded.delta.tokens) as Array<keyof TokenUsage>) {
        expect(folded.delta.tokens[field]).toBe(after.tokens[field] - before.tokens[field]);
      }
      deltas.push(folded.delta);
      state = folded.state;
    }
    // Only the two counted cost-states charge anything; assistant entries and the repeat none.
    expect(deltas.map((d) => d.turns)).toEqual([0, 1, 0, 1, 0]);
    expect(deltas.map((d) => d.tokens.inputTokens)).toEqual([0, 4, 0, 10, 0]);
    expect(usageTotals(state)).toMatchObject({ costUsd: 0.03, turns: 2 });
  });
});

describe('forkUsageState on hand-made entries', () => {
  const T1 = '2026-01-01T00:00:01.000Z';
  const T2 = '2026-01-01T00:00:02.000Z';
  const LATER = '2026-01-01T00:05:00.000Z';
  const parentTurns = [
    [assistant('msg_p1', { input: 1, cacheCreation: 1000 }, { timestamp: T1 })],
    [costState({ cost: 0.05, duration: 400, models: { [MODEL]: { inputTokens: 1000 } } })],
    [assistant('msg_p2', { input: 1, cacheRead: 1000 }, { timestamp: T2 })],
    [costState({ cost: 0.06, duration: 600, models: { [MODEL]: { inputTokens: 2000 } } })],
  ];
  const parent = foldAll(emptyUsageState(), parentTurns).state;

  /** The parent's assistant entries as the SDK's forkSession() helper copies them. */
  const helperCopies = [
    assistant('msg_p1', { input: 1, cacheCreation: 1000 }, { timestamp: T1, forkedFrom: {} }),
    assistant('msg_p2', { input: 1, cacheRead: 1000 }, { timestamp: T2, forkedFrom: {} }),
  ];

  test('a fork starts with its parent totals and reports none of them as new', () => {
    const fork = forkUsageState(parent);
    expect(usageTotals(fork)).toEqual(usageTotals(parent));
    const copied = foldUsage(fork, helperCopies);
    expect(copied.delta.costUsd).toBe(0);
    expect(copied.delta.tokens).toEqual(tokens());
    expect(usageTotals(copied.state)).toEqual(usageTotals(parent));
    // The parent is untouched by its fork.
    expect(parent).toEqual(foldAll(emptyUsageState(), parentTurns).state);
  });

  test('a retried batch of copies adds nothing, even after the copies ended', () => {
    const batches = [
      helperCopies,
      [assistant('msg_f1', { input: 2 }, { timestamp: LATER })],
      [costState({ cost: 0.01, duration: 100, startTime: START + 1 })],
    ];
    const once = foldAll(forkUsageState(parent), batches).state;
    expect(foldRetried(forkUsageState(parent), batches)).toEqual(once);
  });

  test('helper fork: the first cost-state counts from zero on a new counter', () => {
    const { state, costUsd, turns } = foldAll(forkUsageState(parent), [
      helperCopies,
      [assistant('msg_f1', { input: 2 }, { timestamp: LATER })],
      [
        costState({
          cost: 0.08, // more than the parent's whole counter: only the startTime tells
          duration: 300,
          startTime: START + 3_600_000,
          models: { [MODEL]: { inputTokens: 500 } },
        }),
      ],
    ]);
    expect(costUsd).toBe(0.08);
    expect(turns).toBe(1);
    expect(usageTotals(state)).toMatchObject({
      costUsd: 0.14,
      turns: 3,
      durationMs: 900,
      tokens: tokens({ inputTokens: 2500 }),
    });
  });

  test('query fork: the first cost-state includes the parent counter, counted once', () => {
    const copies = [
      assistant('msg_p1', { input: 1, cacheCreation: 1000 }, { timestamp: T1 }),
      assistant('msg_p2', { input: 1, cacheRead: 1000 }, { timestamp: T2 }),
    ];
    const afterCopies = foldUsage(forkUsageState(parent), [
      ...copies,
      { type: 'user', uuid: 'new-prompt' },
      assistant('msg_q1', { input: 7 }, { timestamp: LATER }),
    ]);
    expect(usageTotals(afterCopies.state).pendingTokens).toEqual(tokens({ inputTokens: 7 }));
    const done = foldUsage(afterCopies.state, [
      costState({ cost: 0.065, duration: 800, models: { [MODEL]: { inputTokens: 2010 } } }),
    ]);
    expect(done.delta).toMatchObject({ costUsd: 0.005, turns: 1, durationMs: 200 });
    // What the cost-state counted beyond the parent's counter; the pending 7 were an estimate.
    expect(done.delta.tokens.inputTokens).toBe(2010 - 2000);
    expect(usageTotals(done.state)).toMatchObject({
      costUsd: 0.065,
      turns: 3,
      tokens: tokens({ inputTokens: 2010 }),
    });
  });

  test('a fork cut before the parent’s last message still skips the copies and counts new calls', () => {
    // Copies without the forkedFrom mark (a resumeSessionAt fork): told apart by their time.
    const cut = foldUsage(forkUsageState(parent), [
      assistant('msg_p1', { input: 1, cacheCreation: 1000 }, { timestamp: T1 }),
      assistant('msg_c1', { input: 9 }, { timestamp: LATER }),
    ]);
    expect(usageTotals(cut.state).pendingTokens).toEqual(tokens({ inputTokens: 9 }));
    expect(cut.delta).toEqual(NOTHING);
    // Copies the helper marked are skipped whatever their time says.
    const marked = foldUsage(forkUsageState(parent), [
      assistant('msg_p1', { input: 1 }, { timestamp: LATER, forkedFrom: {} }),
      assistant('msg_c2', { input: 4 }, { timestamp: LATER }),
    ]);
    expect(usageTotals(marked.state).pendingTokens).toEqual(tokens({ inputTokens: 4 }));
  });

  test('a fork of a parent with pending tokens shows them until its first cost-state', () => {
    const dying = foldUsage(parent, [assistant('msg_p3', { output: 50 }, { timestamp: LATER })]);
    const fork = forkUsageState(dying.state);
    expect(usageTotals(fork)).toEqual(usageTotals(dying.state));
    const copied = foldUsage(fork, [
      assistant('msg_p3', { output: 50 }, { timestamp: LATER, forkedFrom: {} }),
    ]);
    expect(copied.delta.tokens).toEqual(tokens());
  });

  test('a fork of a fork keeps every ancestor figure once', () => {
    const child = foldAll(forkUsageState(parent), [
      helperCopies,
      [costState({ cost: 0.01, duration: 100, startTime: START + 1 })],
    ]).state;
    const grandchild = foldAll(forkUsageState(child), [
      helperCopies,
      [costState({ cost: 0.02, duration: 100, startTime: START + 1 })],
    ]);
    expect(grandchild.costUsd).toBe(0.01);
    expect(usageTotals(grandchild.state)).toMatchObject({ costUsd: 0.08, turns: 4 });
  });
});

function messageIds(entries: SessionStoreEntry[]): string[] {
  return entries
    .filter((entry) => entry.type === 'assistant')
    .map((entry) => (entry.message as { id: string }).id);
}

describe('foldUsage on transcripts written by the real SDK', { timeout: 60_000 }, () => {
  const dirs = new TempDirs();
  let mock: MockAnthropic;
  let backend: Backend;
  let store: RecordingStore;
  const batchesOf = (sessionId: string) => store.appends(sessionId).map((a) => a.entries);
  let cwd: string;
  const turns: TurnResult[] = [];
  let parentId: string;
  let parent: UsageState;

  async function turn(prompt: string, resume: string | undefined, forkSession = false) {
    return runTurn({
      mock,
      prompt,
      cwd,
      configDir: await dirs.make('usage-host'),
      options: {
        sessionStore: store,
        allowedTools: ['Read'],
        ...(resume ? { resume, forkSession } : {}),
      },
    });
  }

  beforeAll(async () => {
    mock = await startMockAnthropic();
    backend = await openBackend('memory:');
    store = new RecordingStore(backend.store);
    cwd = await dirs.make('usage-cwd');
    const notes = path.join(cwd, 'NOTES.md');
    await writeFile(notes, 'Replicas share nothing but the session store.\n');
    turns.push(await turn('Turn 1: hello', undefined));
    parentId = turns[0]?.sessionId as string;
    // Turn 2 calls a tool: two API calls, the first written as two entries (text, tool_use).
    mock.enqueue(
      {
        content: [
          { type: 'text', text: 'Let me read the notes.' },
          { type: 'tool_use', name: 'Read', input: { file_path: notes } },
        ],
      },
      { content: 'The notes say replicas share only the store.' },
    );
    turns.push(await turn('Turn 2: read the notes', parentId));
    turns.push(await turn('Turn 3: thanks', parentId));
    parent = foldAll(emptyUsageState(), batchesOf(parentId)).state;
  }, 60_000);

  afterAll(async () => {
    await mock?.close();
    await backend?.close();
    await dirs.cleanup();
  });

  test('a session resumed on three hosts: three turns, cost equal to the SDK total', () => {
    const batches = batchesOf(parentId);
    const { state, costUsd, turns: counted, deltas } = foldAll(emptyUsageState(), batches);
    const last = turns[2]?.result.total_cost_usd as number;
    expect(usageTotals(state).turns).toBe(3);
    expect(counted).toBe(3);
    expect(Math.abs(usageTotals(state).costUsd - last)).toBeLessThan(1e-9);
    expect(Math.abs(costUsd - last)).toBeLessThan(1e-9);
    // Each turn's delta is what the SDK's cumulative result grew by.
    const perTurn = deltas.filter((d) => d.turns === 1).map((d) => d.costUsd);
    const results = turns.map((t) => t.result.total_cost_usd);
    const expected = results.map((total, i) => total - (i === 0 ? 0 : (results[i - 1] as number)));
    expect(perTurn).toHaveLength(3);
    for (const [i, cost] of perTurn.entries()) expect(cost).toBeCloseTo(expected[i] as number, 9);
    expect(usageTotals(state).pendingTokens).toEqual(tokens());

    // The whole transcript as the store holds it folds to the same totals.
    const loaded = foldUsage(emptyUsageState(), batches.flat());
    expect(usageTotals(loaded.state)).toEqual(usageTotals(state));
  });

  test('pending tokens of a turn match what its cost-state then reports', () => {
    // The tool turn wrote one API response as two entries: the id rule is exercised.
    const ids = messageIds(batchesOf(parentId).flat());
    expect(new Set(ids).size).toBeLessThan(ids.length);
    let state = emptyUsageState();
    let turnsCounted = 0;
    for (const batch of batchesOf(parentId)) {
      const folded = foldUsage(state, batch);
      if (folded.delta.turns === 1) {
        turnsCounted += 1;
        // The transcript shows every API call of these turns: the pending estimate (the batch's
        // assistant entries included) was exactly what the cost-state counted and charges.
        const beforeCost = batch.filter((entry) => entry.type !== 'cost-state');
        const estimate = usageTotals(foldUsage(state, beforeCost).state).pendingTokens;
        expect(estimate.outputTokens).toBeGreaterThan(0);
        expect(folded.delta.tokens).toEqual(estimate);
        expect(usageTotals(folded.state).pendingTokens).toEqual(tokens());
      } else {
        // A turn in progress charges nothing: its tokens are pending, its cost unknown.
        expect(folded.delta).toEqual(NOTHING);
      }
      state = folded.state;
    }
    expect(turnsCounted).toBe(3);
  });

  test('every batch delivered twice (retried appends) changes nothing', () => {
    const batches = batchesOf(parentId);
    const twice = foldRetried(emptyUsageState(), batches);
    expect(twice).toEqual(foldAll(emptyUsageState(), batches).state);
    expect(usageTotals(twice).turns).toBe(3);
  });

  test('a helper fork plus one turn: parent cost plus the new turn, and only the turn is new', async () => {
    const fork = await forkSession(parentId, { dir: cwd, sessionStore: store });
    const copied = foldAll(forkUsageState(parent), batchesOf(fork.sessionId));
    expect(copied.costUsd).toBe(0);
    expect(usageTotals(copied.state)).toEqual(usageTotals(parent));

    const next = await turn('On the helper fork', fork.sessionId);
    expect(next.sessionId).toBe(fork.sessionId);
    const {
      state,
      costUsd,
      turns: counted,
    } = foldAll(forkUsageState(parent), batchesOf(fork.sessionId));
    // The helper's fork starts a fresh counter: the SDK reports the new turn alone.
    const turnCost = next.result.total_cost_usd;
    expect(Math.abs(costUsd - turnCost)).toBeLessThan(1e-9);
    expect(counted).toBe(1);
    expect(usageTotals(state).turns).toBe(4);
    const expected = usageTotals(parent).costUsd + turnCost;
    expect(Math.abs(usageTotals(state).costUsd - expected)).toBeLessThan(1e-9);
    const batches = batchesOf(fork.sessionId);
    expect(foldRetried(forkUsageState(parent), batches)).toEqual(state);
  });

  test('a forkSession: true query: its total includes the parent, counted once', async () => {
    const next = await turn('On the query fork', parentId, true);
    expect(next.sessionId).not.toBe(parentId);
    const batches = batchesOf(next.sessionId);
    const { state, costUsd, turns: counted } = foldAll(forkUsageState(parent), batches);
    const parentCost = usageTotals(parent).costUsd;
    // This fork's SDK total continues the parent's counter.
    expect(Math.abs(usageTotals(state).costUsd - next.result.total_cost_usd)).toBeLessThan(1e-9);
    expect(Math.abs(costUsd - (next.result.total_cost_usd - parentCost))).toBeLessThan(1e-9);
    expect(counted).toBe(1);
    expect(usageTotals(state).turns).toBe(4);
    // The fork's transcript starts with copies of the parent's calls; none of them was pending:
    // the new call alone was, exactly what the cost-state then reported.
    const parentIds = new Set(messageIds(batchesOf(parentId).flat()));
    expect(messageIds(batches.flat()).filter((id) => parentIds.has(id)).length).toBeGreaterThan(0);
    let before = forkUsageState(parent);
    let charged: UsageDelta | undefined;
    for (const batch of batches) {
      const folded = foldUsage(before, batch);
      if (folded.delta.turns === 1) {
        const pending = usageTotals(before).pendingTokens;
        expect(pending.outputTokens).toBeGreaterThan(0);
        expect(folded.delta.tokens).toEqual(pending);
        charged = folded.delta;
      }
      before = folded.state;
    }
    expect(charged?.costUsd).toBeCloseTo(costUsd, 9);
    expect(foldRetried(forkUsageState(parent), batches)).toEqual(state);
  });
});

describe('turn usage entries of warm processes (rule 9)', () => {
  test('count in full, replace pending tokens, and leave the cost-state counter alone', () => {
    const assistant = {
      type: 'assistant',
      uuid: 'a1',
      timestamp: '2026-01-01T00:00:00.000Z',
      message: {
        id: 'msg_1',
        model: 'm',
        usage: { input_tokens: 10, output_tokens: 5 },
      },
    };
    const entry = {
      type: TURN_USAGE_ENTRY,
      uuid: 'u1',
      costUsd: 0.25,
      durationMs: 40,
      apiDurationMs: 30,
      byModel: {
        m: {
          inputTokens: 12,
          outputTokens: 6,
          cacheReadInputTokens: 0,
          cacheCreationInputTokens: 3,
          costUsd: 0.25,
        },
      },
    };
    const pending = foldUsage(emptyUsageState(), [assistant]);
    expect(usageTotals(pending.state).pendingTokens.inputTokens).toBe(10);
    const { state, delta } = foldUsage(pending.state, [entry]);
    const totals = usageTotals(state);
    expect(totals).toMatchObject({ costUsd: 0.25, turns: 1, durationMs: 40, apiDurationMs: 30 });
    expect(totals.tokens).toEqual({
      inputTokens: 12,
      outputTokens: 6,
      cacheReadInputTokens: 0,
      cacheCreationInputTokens: 3,
    });
    expect(totals.pendingTokens.inputTokens).toBe(0);
    expect(delta.costUsd).toBe(0.25);
    expect(delta.turns).toBe(1);
    expect(state.counter).toBeNull();
    // A malformed one counts nothing.
    const bad = foldUsage(state, [{ ...entry, uuid: 'u2', costUsd: -1 }]);
    expect(bad.delta.turns).toBe(0);
  });
});
