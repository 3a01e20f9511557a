import { createHash } from 'node:crypto';

/**
 * Usage and cost of a session, folded from its transcript as entries are appended, so the figures
 * are right whichever process ran the turn: all it takes is the store. Pure: no I/O.
 *
 * Sources, as CLI 2.1.329 writes them:
 * - `cost-state` entries (no uuid), one per turn, with the SDK's cumulative counter for the
 *   session: `totalCostUSD`, `totalDuration`, `totalAPIDuration`, `startTime`, and `modelUsage`
 *   per model (tokens and `costUSD`). A resume restores the counter (same `startTime`) and adds
 *   to it; so does `query({ resume, forkSession: true })`, whose first cost-state includes the
 *   parent's totals. The SDK's `forkSession()` helper copies no cost-state, so the fork's first
 *   turn starts a new counter (new `startTime`) from zero.
 * - `assistant` entries with `message.id`, `message.model` and `message.usage`. One API response
 *   may be written as several consecutive entries with the same id and usage.
 *
 * Rules:
 * 1. A turn's spend is the difference between its cost-state and the previous one: the counter is
 *    cumulative, so the difference is what that turn added. Each non-duplicate cost-state is one
 *    turn.
 * 2. A cost-state identical to one seen recently (same startTime, cost, durations and tokens) is
 *    a retried append: it adds nothing and is not a turn.
 * 3. A cost-state whose startTime differs from the previous one, or whose cost went down, comes
 *    from a restarted counter (a helper fork, a resume that did not restore it): what was counted
 *    stays as baseline and the new cost-state counts in full. A counter restored from an older
 *    snapshot is therefore overcounted, never undercounted.
 * 4. Tokens of assistant entries since the last cost-state are pending: a turn that died before
 *    its cost-state still shows them. The next cost-state replaces them with its own figures: they
 *    are the SDK's, and count every call of its process, also any the main transcript does not
 *    show. A dead turn's tokens thus drop out again, and its cost is never known: pending tokens
 *    have no cost, only cost-states carry prices.
 * 5. An assistant message id is counted once: repeats within a turn and re-delivered entries of
 *    the last turn (retried appends) add nothing.
 * 6. A fork starts from its parent's figures (`forkUsageState`); they are never reported as new
 *    spend. The fork's transcript begins with copies of the parent's assistant entries (the
 *    helper marks them `forkedFrom`; a `forkSession: true` query keeps their ids and
 *    timestamps): until the fork's first cost-state, an assistant entry is a copy unless it is
 *    unmarked and newer than anything the parent saw, and the parent's last message id ends the
 *    copies. The fork keeps the parent's counter, so rule 1 handles a `forkSession: true` query
 *    and rule 3 the helper's fresh counter.
 * 7. Malformed entries are ignored and nothing throws: a cost-state needs a numeric
 *    `totalCostUSD` and a `modelUsage` object, an assistant entry a message id, model and usage
 *    object; within those, a count that is not a non-negative number counts as zero.
 * 8. Costs are rounded to 1e-9 USD at every step, so sums of many deltas do not drift.
 * 9. A `sessionhub-turn-usage` entry (TURN_USAGE_ENTRY) is one turn of an SDK process the
 *    runner keeps alive between turns (the warm pool). Such a process never writes a
 *    cost-state, because the SDK writes one only when a process exits normally and the runner
 *    stops warm processes without that flush. The entry carries the turn's own figures, which
 *    count in full like a cost-state's difference: they replace the turn's pending tokens. It
 *    leaves the cost-state counter alone, since the next process the CLI starts restores that
 *    counter from the last cost-state, not from these entries. It has a uuid, so a retried
 *    append adds nothing.
 *
 * `foldUsage` takes the main transcript's entries (no subpath), in append order, as the store
 * receives them. Its delta is the exact change of `usageTotals`: cost and turns never go down;
 * tokens may, when a cost-state replaces pending tokens with smaller figures.
 */

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens: number;
  cacheCreationInputTokens: number;
}

export interface ModelUsage extends TokenUsage {
  costUsd: number;
}

export interface SessionUsage {
  tokens: TokenUsage;
  costUsd: number;
  /** Turns that wrote a cost-state. */
  turns: number;
  /** Wall time of the SDK processes that ran the turns, as the CLI counts it. */
  durationMs: number;
  apiDurationMs: number;
  byModel: Record<string, ModelUsage>;
  /** Tokens of assistant entries not yet covered by a cost-state; included in `tokens`. */
  pendingTokens: TokenUsage;
  /** The SDK reported a model it has no price for: `costUsd` is too low. */
  hasUnknownModelCost: boolean;
}

/** What one fold added to the totals. */
export interface UsageDelta {
  costUsd: number;
  tokens: TokenUsage;
  turns: number;
  durationMs: number;
  apiDurationMs: number;
  /** Only the models whose figures changed. */
  byModel: Record<string, ModelUsage>;
}

/** One cost-state's cumulative counter. */
export interface UsageCounter {
  startTime: number | null;
  costUsd: number;
  durationMs: number;
  apiDurationMs: number;
  byModel: Record<string, ModelUsage>;
}

/** Everything a fold must remember between appends. Plain JSON: store it with the session. */
export interface UsageState {
  version: 1;
  /** Figures from cost-states, plus a parent's figures for a fork. */
  counted: {
    costUsd: number;
    turns: number;
    durationMs: number;
    apiDurationMs: number;
    byModel: Record<string, ModelUsage>;
    hasUnknownModelCost: boolean;
  };
  /** The last cost-state's counter; the next one is measured against it. */
  counter: UsageCounter | null;
  /** Digests of the latest cost-states, to recognise a retried append (cost-states carry no uuid). */
  recentCostStates: string[];
  /** Tokens of assistant messages since the last cost-state, by model. */
  pending: Record<string, TokenUsage>;
  /** Message ids counted as pending since the last cost-state. */
  pendingIds: string[];
  /** Message ids the last cost-state covered (a retried batch may bring them again). */
  coveredIds: string[];
  lastMessageId: string | null;
  /** Latest assistant entry timestamp seen, in ms since the epoch. */
  lastMessageAt: number | null;
  /** Set on a fork until its copies of the parent's assistant entries are past. */
  copies: { throughId: string | null; notAfter: number | null } | null;
}

/** The entry type of a warm process's turn figures (rule 9). */
export const TURN_USAGE_ENTRY = 'sessionhub-turn-usage';

const RECENT_COST_STATES = 8;
/** Bounds the state of a turn with a pathological number of API calls. */
const MAX_IDS = 512;
const COST_EPSILON = 1e-9;

const TOKEN_FIELDS = [
  'inputTokens',
  'outputTokens',
  'cacheReadInputTokens',
  'cacheCreationInputTokens',
] as const;

/** Where each token count sits in an assistant entry's `message.usage`. */
const WIRE_FIELDS: Record<keyof TokenUsage, string> = {
  inputTokens: 'input_tokens',
  outputTokens: 'output_tokens',
  cacheReadInputTokens: 'cache_read_input_tokens',
  cacheCreationInputTokens: 'cache_creation_input_tokens',
};

function roundCost(value: number): number {
  return Math.round(value * 1e9) / 1e9;
}

function zeroTokens(): TokenUsage {
  return { inputTokens: 0, outputTokens: 0, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 };
}

function zeroModel(): ModelUsage {
  return { ...zeroTokens(), costUsd: 0 };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0;
}

function tokenSum(tokens: TokenUsage): number {
  return TOKEN_FIELDS.reduce((sum, field) => sum + tokens[field], 0);
}

function addTokens(into: TokenUsage, from: TokenUsage, sign = 1): void {
  for (const field of TOKEN_FIELDS) into[field] += sign * from[field];
}

function pushBounded(list: string[], value: string, max: number): void {
  list.push(value);
  if (list.length > max) list.splice(0, list.length - max);
}

export function emptyUsageState(): UsageState {
  return {
    version: 1,
    counted: {
      costUsd: 0,
      turns: 0,
      durationMs: 0,
      apiDurationMs: 0,
      byModel: {},
      hasUnknownModelCost: false,
    },
    counter: null,
    recentCostStates: [],
    pending: {},
    pendingIds: [],
    coveredIds: [],
    lastMessageId: null,
    lastMessageAt: null,
    copies: null,
  };
}

/**
 * The starting state of a fork of the session whose state is `parent`: its totals are the
 * parent's, and the parent's copied assistant entries will not be counted again (rule 6).
 */
export function forkUsageState(parent: UsageState): UsageState {
  const state = structuredClone(parent);
  if (parent.lastMessageId !== null || parent.lastMessageAt !== null) {
    state.copies = { throughId: parent.lastMessageId, notAfter: parent.lastMessageAt };
  }
  // The parent's last turns are copied too; their ids stay known so they add nothing.
  state.coveredIds = [...parent.coveredIds, ...parent.pendingIds].slice(-MAX_IDS);
  return state;
}

/** The session's figures: counted cost-states plus pending tokens. */
export function usageTotals(state: UsageState): SessionUsage {
  const byModel: Record<string, ModelUsage> = {};
  const tokens = zeroTokens();
  const pendingTokens = zeroTokens();
  for (const [model, usage] of Object.entries(state.counted.byModel)) {
    byModel[model] = { ...usage };
    addTokens(tokens, usage);
  }
  for (const [model, usage] of Object.entries(state.pending)) {
    const into = byModel[model] ?? zeroModel();
    addTokens(into, usage);
    byModel[model] = into;
    addTokens(tokens, usage);
    addTokens(pendingTokens, usage);
  }
  return {
    tokens,
    costUsd: state.counted.costUsd,
    turns: state.counted.turns,
    durationMs: state.counted.durationMs,
    apiDurationMs: state.counted.apiDurationMs,
    byModel,
    pendingTokens,
    hasUnknownModelCost: state.counted.hasUnknownModelCost,
  };
}

interface CostState extends UsageCounter {
  hasUnknownModelCost: boolean;
}

function readCostState(entry: Record<string, unknown>): CostState | undefined {
  const cost = entry.totalCostUSD;
  if (typeof cost !== 'number' || !Number.isFinite(cost) || cost < 0) return undefined;
  // Without the per-model counters the next cost-state's token differences would be wrong.
  if (!isRecord(entry.modelUsage)) return undefined;
  const byModel: Record<string, ModelUsage> = {};
  for (const [model, raw] of Object.entries(entry.modelUsage)) {
    if (!isRecord(raw)) continue;
    const usage = zeroModel();
    for (const field of TOKEN_FIELDS) usage[field] = count(raw[field]);
    usage.costUsd = count(raw.costUSD);
    byModel[model] = usage;
  }
  const startTime = entry.startTime;
  return {
    startTime: typeof startTime === 'number' && Number.isFinite(startTime) ? startTime : null,
    costUsd: cost,
    durationMs: count(entry.totalDuration),
    apiDurationMs: count(entry.totalAPIDuration),
    byModel,
    hasUnknownModelCost: entry.hasUnknownModelCost === true,
  };
}

/**
 * A short digest of a cost-state's figures. Stored with every session's state, so it is kept
 * small; two different cost-states of one session sharing a digest is a one in 10^21 chance.
 */
function fingerprint(counter: UsageCounter): string {
  const models = Object.keys(counter.byModel)
    .sort()
    .map((model) => {
      const usage = counter.byModel[model] as ModelUsage;
      return `${model}:${tokenSum(usage)}:${usage.costUsd}`;
    });
  return digest(
    [
      counter.startTime ?? '',
      counter.costUsd,
      counter.durationMs,
      counter.apiDurationMs,
      ...models,
    ].join('|'),
  );
}

/** 72 bits of SHA-256, in base64url. */
function digest(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 12);
}

function isRestart(previous: UsageCounter, next: UsageCounter): boolean {
  if (previous.startTime !== null && next.startTime !== null) {
    if (previous.startTime !== next.startTime) return true;
  }
  return next.costUsd < previous.costUsd - COST_EPSILON;
}

function applyCostState(state: UsageState, next: CostState): void {
  const { hasUnknownModelCost, ...counter } = next;
  const print = fingerprint(counter);
  if (state.recentCostStates.includes(print)) return;
  pushBounded(state.recentCostStates, print, RECENT_COST_STATES);

  const previous = state.counter;
  const from = previous === null || isRestart(previous, counter) ? null : previous;
  const counted = state.counted;
  counted.costUsd = roundCost(
    counted.costUsd + Math.max(0, counter.costUsd - (from?.costUsd ?? 0)),
  );
  counted.durationMs += Math.max(0, counter.durationMs - (from?.durationMs ?? 0));
  counted.apiDurationMs += Math.max(0, counter.apiDurationMs - (from?.apiDurationMs ?? 0));
  for (const [model, usage] of Object.entries(counter.byModel)) {
    const before = from?.byModel[model] ?? zeroModel();
    const into = counted.byModel[model] ?? zeroModel();
    for (const field of TOKEN_FIELDS) into[field] += Math.max(0, usage[field] - before[field]);
    into.costUsd = roundCost(into.costUsd + Math.max(0, usage.costUsd - before.costUsd));
    counted.byModel[model] = into;
  }
  counted.turns += 1;
  counted.hasUnknownModelCost ||= hasUnknownModelCost;

  state.counter = counter;
  state.pending = {};
  state.coveredIds = state.pendingIds;
  state.pendingIds = [];
  state.copies = null;
}

/** Rule 9: a warm process's turn, counted in full from its own figures. */
function applyTurnUsage(state: UsageState, entry: Record<string, unknown>): void {
  const cost = entry.costUsd;
  if (typeof cost !== 'number' || !Number.isFinite(cost) || cost < 0) return;
  if (!isRecord(entry.byModel)) return;
  const counted = state.counted;
  counted.costUsd = roundCost(counted.costUsd + cost);
  counted.durationMs += count(entry.durationMs);
  counted.apiDurationMs += count(entry.apiDurationMs);
  for (const [model, raw] of Object.entries(entry.byModel)) {
    if (!isRecord(raw)) continue;
    const into = counted.byModel[model] ?? zeroModel();
    for (const field of TOKEN_FIELDS) into[field] += count(raw[field]);
    into.costUsd = roundCost(into.costUsd + count(raw.costUsd));
    counted.byModel[model] = into;
  }
  counted.turns += 1;
  state.pending = {};
  state.coveredIds = state.pendingIds;
  state.pendingIds = [];
  state.copies = null;
}

function readTokens(usage: Record<string, unknown>): TokenUsage {
  const tokens = zeroTokens();
  for (const field of TOKEN_FIELDS) tokens[field] = count(usage[WIRE_FIELDS[field]]);
  return tokens;
}

/** Whether an assistant entry of a fork is one of the parent's, copied (rule 6). */
function isCopy(
  copies: NonNullable<UsageState['copies']>,
  entry: Record<string, unknown>,
  id: string,
  at: number | null,
): boolean {
  if (isRecord(entry.forkedFrom)) return true;
  if (id === copies.throughId) return true;
  if (at !== null && copies.notAfter !== null) return at <= copies.notAfter;
  // Without timestamps to tell, wait for the parent's last id or the first cost-state.
  return true;
}

function applyAssistant(state: UsageState, entry: Record<string, unknown>): void {
  const message = entry.message;
  if (!isRecord(message)) return;
  const { id, model, usage } = message;
  if (typeof id !== 'string' || id === '' || typeof model !== 'string' || model === '') return;
  if (!isRecord(usage)) return;
  const parsed = typeof entry.timestamp === 'string' ? Date.parse(entry.timestamp) : Number.NaN;
  const at = Number.isFinite(parsed) ? parsed : null;

  const seen =
    id === state.lastMessageId || state.pendingIds.includes(id) || state.coveredIds.includes(id);
  let copy = false;
  if (state.copies !== null) {
    copy = isCopy(state.copies, entry, id, at);
    if (!copy || id === state.copies.throughId) state.copies = null;
  }
  state.lastMessageId = id;
  if (at !== null && (state.lastMessageAt === null || at > state.lastMessageAt)) {
    state.lastMessageAt = at;
  }
  if (seen) return;
  if (copy) {
    // A retried batch of copies comes after the window closed: the ids must stay known.
    pushBounded(state.coveredIds, id, MAX_IDS);
    return;
  }

  pushBounded(state.pendingIds, id, MAX_IDS);
  const tokens = readTokens(usage);
  if (tokenSum(tokens) === 0) return;
  const into = state.pending[model] ?? zeroTokens();
  addTokens(into, tokens);
  state.pending[model] = into;
}

function deltaOf(before: SessionUsage, after: SessionUsage): UsageDelta {
  const tokens = { ...after.tokens };
  addTokens(tokens, before.tokens, -1);
  const byModel: Record<string, ModelUsage> = {};
  const models = new Set([...Object.keys(before.byModel), ...Object.keys(after.byModel)]);
  for (const model of models) {
    const was = before.byModel[model] ?? zeroModel();
    const now = after.byModel[model] ?? zeroModel();
    const change: ModelUsage = { ...now, costUsd: roundCost(now.costUsd - was.costUsd) };
    addTokens(change, was, -1);
    if (change.costUsd !== 0 || TOKEN_FIELDS.some((field) => change[field] !== 0)) {
      byModel[model] = change;
    }
  }
  return {
    costUsd: roundCost(after.costUsd - before.costUsd),
    tokens,
    turns: after.turns - before.turns,
    durationMs: after.durationMs - before.durationMs,
    apiDurationMs: after.apiDurationMs - before.apiDurationMs,
    byModel,
  };
}

/**
 * Folds appended transcript entries into `state`. Returns the new state (the argument is not
 * changed) and what the entries added, to charge to the session's owner.
 */
export function foldUsage(
  state: UsageState,
  entries: readonly unknown[],
): { state: UsageState; delta: UsageDelta } {
  const next = structuredClone(state);
  return { state: next, delta: foldUsageInPlace(next, entries) };
}

/**
 * foldUsage() for a caller that owns `state` (say, it was just parsed from the stored JSON): the
 * state is changed in place, which spares the copy on the hot path of every append.
 */
export function foldUsageInPlace(state: UsageState, entries: readonly unknown[]): UsageDelta {
  const before = usageTotals(state);
  if (Array.isArray(entries)) {
    for (const entry of entries) {
      if (!isRecord(entry)) continue;
      if (entry.type === 'cost-state') {
        const costState = readCostState(entry);
        if (costState) applyCostState(state, costState);
      } else if (entry.type === 'assistant') {
        applyAssistant(state, entry);
      } else if (entry.type === TURN_USAGE_ENTRY) {
        applyTurnUsage(state, entry);
      }
    }
  }
  return deltaOf(before, usageTotals(state));
}
