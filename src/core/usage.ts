import * as crypto from 'node:crypto';

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
 *    have no cost, only cost-states carry prices. Pending tokens are never charged to the
 *    owner's day (see the delta below).
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
 * receives them. Its delta is the exact change of the counted figures (`state.counted`: what
 * cost-states and turn-usage entries counted, plus a fork's starting figures), never of pending
 * tokens: it is what the owner's day is charged, so a day's sums are those of completed turns
 * only, and an append that counts no turn (the assistant entries of a turn in progress) charges
 * nothing and costs the store no daily write. Counted figures never go down, so neither does a
 * delta; and `usageTotals` minus its `pendingTokens` moves by exactly the delta.
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

/** What one fold added to the counted figures: what the owner's day is charged (see above). */
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

function roundCost(value: number): number {
  return Math.round(value * 1e9) / 1e9;
}

function zeroTokens(): TokenUsage {
  return { inputTokens: 0, outputTokens: 0, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 };
}

function zeroModel(): ModelUsage {
  return {
    inputTokens: 0,
    outputTokens: 0,
    cacheReadInputTokens: 0,
    cacheCreationInputTokens: 0,
    costUsd: 0,
  };
}

// The helpers on the fold's hot path name each field: several times faster than looping over
// TOKEN_FIELDS or spreading, and every append runs them.

function copyModel(usage: ModelUsage): ModelUsage {
  return {
    inputTokens: usage.inputTokens,
    outputTokens: usage.outputTokens,
    cacheReadInputTokens: usage.cacheReadInputTokens,
    cacheCreationInputTokens: usage.cacheCreationInputTokens,
    costUsd: usage.costUsd,
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0;
}

function tokenSum(tokens: TokenUsage): number {
  return (
    tokens.inputTokens +
    tokens.outputTokens +
    tokens.cacheReadInputTokens +
    tokens.cacheCreationInputTokens
  );
}

function addTokens(into: TokenUsage, from: TokenUsage): void {
  into.inputTokens += from.inputTokens;
  into.outputTokens += from.outputTokens;
  into.cacheReadInputTokens += from.cacheReadInputTokens;
  into.cacheCreationInputTokens += from.cacheCreationInputTokens;
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

type CountedUsage = UsageState['counted'];

function copyModels(byModel: Record<string, ModelUsage>): Record<string, ModelUsage> {
  const copy: Record<string, ModelUsage> = {};
  for (const model of Object.keys(byModel)) copy[model] = copyModel(byModel[model] as ModelUsage);
  return copy;
}

function copyCounted(counted: CountedUsage): CountedUsage {
  return {
    costUsd: counted.costUsd,
    turns: counted.turns,
    durationMs: counted.durationMs,
    apiDurationMs: counted.apiDurationMs,
    byModel: copyModels(counted.byModel),
    hasUnknownModelCost: counted.hasUnknownModelCost,
  };
}

/**
 * A deep copy of a state, for a caller that must fold without changing the original. Written
 * out by hand: several times faster than structuredClone() or a JSON round trip.
 */
export function cloneUsageState(state: UsageState): UsageState {
  const pending: Record<string, TokenUsage> = {};
  for (const model of Object.keys(state.pending)) {
    const tokens = zeroTokens();
    addTokens(tokens, state.pending[model] as TokenUsage);
    pending[model] = tokens;
  }
  return {
    ...state,
    counted: { ...state.counted, byModel: copyModels(state.counted.byModel) },
    counter:
      state.counter === null
        ? null
        : { ...state.counter, byModel: copyModels(state.counter.byModel) },
    recentCostStates: [...state.recentCostStates],
    pending,
    pendingIds: [...state.pendingIds],
    coveredIds: [...state.coveredIds],
    copies: state.copies === null ? null : { ...state.copies },
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

/** A cost-state's counter; its `hasUnknownModelCost` flag is read by the caller. */
function readCostState(entry: Record<string, unknown>): UsageCounter | undefined {
  const cost = entry.totalCostUSD;
  if (typeof cost !== 'number' || !Number.isFinite(cost) || cost < 0) return undefined;
  // Without the per-model counters the next cost-state's token differences would be wrong.
  const modelUsage = entry.modelUsage;
  if (!isRecord(modelUsage)) return undefined;
  const byModel: Record<string, ModelUsage> = {};
  for (const model of Object.keys(modelUsage)) {
    const raw = modelUsage[model];
    if (!isRecord(raw)) continue;
    byModel[model] = {
      inputTokens: count(raw.inputTokens),
      outputTokens: count(raw.outputTokens),
      cacheReadInputTokens: count(raw.cacheReadInputTokens),
      cacheCreationInputTokens: count(raw.cacheCreationInputTokens),
      costUsd: count(raw.costUSD),
    };
  }
  const startTime = entry.startTime;
  return {
    startTime: typeof startTime === 'number' && Number.isFinite(startTime) ? startTime : null,
    costUsd: cost,
    durationMs: count(entry.totalDuration),
    apiDurationMs: count(entry.totalAPIDuration),
    byModel,
  };
}

/**
 * The text a cost-state's digest is made of: startTime|cost|duration|apiDuration, then
 * |model:tokens:cost for each model in name order.
 */
function fingerprintText(counter: UsageCounter): string {
  let text = `${counter.startTime ?? ''}|${counter.costUsd}|${counter.durationMs}|${counter.apiDurationMs}`;
  const models = Object.keys(counter.byModel);
  if (models.length > 1) models.sort();
  for (const model of models) {
    const usage = counter.byModel[model] as ModelUsage;
    text += `|${model}:${tokenSum(usage)}:${usage.costUsd}`;
  }
  return text;
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function base64Of32(value: number): string {
  let text = '';
  for (let i = 0; i < 6; i++) text += BASE64URL[(value >>> (6 * i)) & 63];
  return text;
}

/**
 * A short digest of a cost-state's figures, kept in the state to recognise a retried append:
 * 64 bits of a fast non-cryptographic hash (two 32-bit multiply-xorshift lanes, as cyrb53
 * mixes them), after a `~` mark. Two different cost-states of one session sharing one is a one
 * in 10^18 chance, and nothing is gained by forging one (whoever writes the transcript writes
 * its costs). Hashed in JavaScript: a call into OpenSSL on every counted turn cost more than the
 * rest of the fold.
 */
function costStateDigest(text: string): string {
  let h1 = 0xdeadbeef ^ text.length;
  let h2 = 0x41c6ce57 ^ text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ code, 2654435761);
    h2 = Math.imul(h2 ^ code, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return `~${base64Of32(h1)}${base64Of32(h2)}`;
}

/** One-shot hashing where Node.js has it (20.12+): a fraction of createHash()'s cost. */
const oneShotHash:
  | ((algorithm: string, text: string, encoding: 'base64url') => string)
  | undefined = (crypto as Partial<typeof crypto>).hash;

/**
 * The digest earlier versions stored (72 bits of SHA-256, base64url: never starts with `~`).
 * States they wrote still hold some until newer cost-states push them out, so a retried append
 * of one of those cost-states is still recognised.
 */
function legacyDigest(text: string): string {
  const full = oneShotHash
    ? oneShotHash('sha256', text, 'base64url')
    : crypto.createHash('sha256').update(text).digest('base64url');
  return full.slice(0, 12);
}

/** Whether the cost-state of `text` (digest `print`) is one of the state's recent ones. */
function isRecentCostState(recent: readonly string[], text: string, print: string): boolean {
  if (recent.includes(print)) return true;
  for (const digest of recent) {
    if (digest[0] !== '~') return recent.includes(legacyDigest(text));
  }
  return false;
}

function isRestart(previous: UsageCounter, next: UsageCounter): boolean {
  if (previous.startTime !== null && next.startTime !== null) {
    if (previous.startTime !== next.startTime) return true;
  }
  return next.costUsd < previous.costUsd - COST_EPSILON;
}

function applyCostState(
  state: UsageState,
  counter: UsageCounter,
  hasUnknownModelCost: boolean,
): void {
  const text = fingerprintText(counter);
  const print = costStateDigest(text);
  if (isRecentCostState(state.recentCostStates, text, print)) return;
  pushBounded(state.recentCostStates, print, RECENT_COST_STATES);

  const previous = state.counter;
  const from = previous === null || isRestart(previous, counter) ? null : previous;
  const counted = state.counted;
  counted.costUsd = roundCost(
    counted.costUsd + Math.max(0, counter.costUsd - (from?.costUsd ?? 0)),
  );
  counted.durationMs += Math.max(0, counter.durationMs - (from?.durationMs ?? 0));
  counted.apiDurationMs += Math.max(0, counter.apiDurationMs - (from?.apiDurationMs ?? 0));
  for (const model of Object.keys(counter.byModel)) {
    const usage = counter.byModel[model] as ModelUsage;
    const before = from?.byModel[model] ?? zeroModel();
    const into = counted.byModel[model] ?? zeroModel();
    into.inputTokens += Math.max(0, usage.inputTokens - before.inputTokens);
    into.outputTokens += Math.max(0, usage.outputTokens - before.outputTokens);
    into.cacheReadInputTokens += Math.max(
      0,
      usage.cacheReadInputTokens - before.cacheReadInputTokens,
    );
    into.cacheCreationInputTokens += Math.max(
      0,
      usage.cacheCreationInputTokens - before.cacheCreationInputTokens,
    );
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
  return {
    inputTokens: count(usage.input_tokens),
    outputTokens: count(usage.output_tokens),
    cacheReadInputTokens: count(usage.cache_read_input_tokens),
    cacheCreationInputTokens: count(usage.cache_creation_input_tokens),
  };
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

function noChange(): UsageDelta {
  return {
    costUsd: 0,
    tokens: zeroTokens(),
    turns: 0,
    durationMs: 0,
    apiDurationMs: 0,
    byModel: {},
  };
}

/** The change of the counted figures from `before` to `after` (models are never dropped). */
function countedChange(before: CountedUsage, after: CountedUsage): UsageDelta {
  const delta = noChange();
  for (const model of Object.keys(after.byModel)) {
    const now = after.byModel[model] as ModelUsage;
    const was = before.byModel[model];
    const change = copyModel(now);
    if (was !== undefined) {
      change.inputTokens -= was.inputTokens;
      change.outputTokens -= was.outputTokens;
      change.cacheReadInputTokens -= was.cacheReadInputTokens;
      change.cacheCreationInputTokens -= was.cacheCreationInputTokens;
      change.costUsd = roundCost(now.costUsd - was.costUsd);
    }
    if (change.costUsd !== 0 || tokenSum(change) !== 0) {
      delta.byModel[model] = change;
      addTokens(delta.tokens, change);
    }
  }
  delta.costUsd = roundCost(after.costUsd - before.costUsd);
  delta.turns = after.turns - before.turns;
  delta.durationMs = after.durationMs - before.durationMs;
  delta.apiDurationMs = after.apiDurationMs - before.apiDurationMs;
  return delta;
}

/**
 * Folds appended transcript entries into `state`. Returns the new state (the argument is not
 * changed) and what the entries added, to charge to the session's owner.
 */
export function foldUsage(
  state: UsageState,
  entries: readonly unknown[],
): { state: UsageState; delta: UsageDelta } {
  const next = cloneUsageState(state);
  return { state: next, delta: foldUsageInPlace(next, entries) };
}

/**
 * foldUsage() for a caller that owns `state` (say, it was just parsed from the stored JSON): the
 * state is changed in place, which spares the copy on the hot path of every append.
 */
export function foldUsageInPlace(state: UsageState, entries: readonly unknown[]): UsageDelta {
  // Only entries that count a turn change the counted figures; the copy to measure the change
  // against is made at the first of them, so most appends make none.
  let before: CountedUsage | null = null;
  if (Array.isArray(entries)) {
    for (const entry of entries) {
      if (!isRecord(entry)) continue;
      if (entry.type === 'assistant') {
        applyAssistant(state, entry);
      } else if (entry.type === 'cost-state') {
        const counter = readCostState(entry);
        if (counter) {
          before ??= copyCounted(state.counted);
          applyCostState(state, counter, entry.hasUnknownModelCost === true);
        }
      } else if (entry.type === TURN_USAGE_ENTRY) {
        before ??= copyCounted(state.counted);
        applyTurnUsage(state, entry);
      }
    }
  }
  return before === null ? noChange() : countedChange(before, state.counted);
}
