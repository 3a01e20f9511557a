import type { ModelUsage, TokenUsage, UsageCounter, UsageState } from './usage.js';

/**
 * The stored text of a usage state. Every main-transcript append writes it back, so it is kept
 * small: figures as arrays instead of objects with long field names, and the counter's
 * per-model figures left out when they equal the counted ones (a session whose SDK counter
 * never restarted). Less than half the bytes of the state as plain JSON, which is cheaper to
 * serialise, to send and to write on every backend.
 *
 * decodeUsageState() reads both this form (`"v":2`) and the plain JSON of the state that
 * earlier versions stored (`"version":1`), so stored states never need migrating. Fields of the
 * state this codec does not know are kept as they are, under `x`.
 */

/** inputTokens, outputTokens, cacheReadInputTokens, cacheCreationInputTokens. */
type PackedTokens = [number, number, number, number];
/** The four token counts, then costUsd. */
type PackedModel = [number, number, number, number, number];
type PackedModels = Record<string, PackedModel>;

interface PackedUsageState {
  v: 2;
  /** counted: costUsd, turns, durationMs, apiDurationMs, hasUnknownModelCost (1 or 0), byModel. */
  c: [number, number, number, number, 0 | 1, PackedModels];
  /** counter: startTime, costUsd, durationMs, apiDurationMs, byModel (0: the same as counted's). */
  k: [number | null, number, number, number, PackedModels | 0] | null;
  r: string[];
  p: Record<string, PackedTokens>;
  pi: string[];
  ci: string[];
  /** lastMessageId, lastMessageAt. */
  m: [string | null, number | null];
  /** copies: throughId, notAfter. */
  cp: [string | null, number | null] | null;
  x?: Record<string, unknown>;
}

const KNOWN_FIELDS = new Set([
  'version',
  'counted',
  'counter',
  'recentCostStates',
  'pending',
  'pendingIds',
  'coveredIds',
  'lastMessageId',
  'lastMessageAt',
  'copies',
]);

function unpackModels(packed: PackedModels): Record<string, ModelUsage> {
  const byModel: Record<string, ModelUsage> = {};
  for (const model of Object.keys(packed)) {
    const [i, o, r, w, cost] = packed[model] as PackedModel;
    byModel[model] = {
      inputTokens: i,
      outputTokens: o,
      cacheReadInputTokens: r,
      cacheCreationInputTokens: w,
      costUsd: cost,
    };
  }
  return byModel;
}

function sameModels(a: Record<string, ModelUsage>, b: Record<string, ModelUsage>): boolean {
  const models = Object.keys(a);
  if (models.length !== Object.keys(b).length) return false;
  for (const model of models) {
    const x = a[model] as ModelUsage;
    const y = b[model];
    if (
      y === undefined ||
      x.inputTokens !== y.inputTokens ||
      x.outputTokens !== y.outputTokens ||
      x.cacheReadInputTokens !== y.cacheReadInputTokens ||
      x.cacheCreationInputTokens !== y.cacheCreationInputTokens ||
      x.costUsd !== y.costUsd
    ) {
      return false;
    }
  }
  return true;
}

/** A number as JSON writes it (a state holds finite numbers only, but never write NaN). */
function num(value: number | null): string {
  return typeof value === 'number' && Number.isFinite(value) ? `${value}` : 'null';
}

/** Strings JSON writes as they are, between quotes: printable ASCII but `"` and `\`. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * A string (or null) as JSON writes it. Ids, digests and model names are plain ASCII: quoting
 * them here costs a fraction of a JSON.stringify() call, and every append writes several.
 */
function str(value: string | null): string {
  if (value === null) return 'null';
  return PLAIN.test(value) ? `"${value}"` : JSON.stringify(value);
}

function strs(values: readonly string[]): string {
  let text = '';
  for (let i = 0; i < values.length; i++)
    text += `${i === 0 ? '' : ','}${str(values[i] as string)}`;
  return `[${text}]`;
}

function modelsText(byModel: Record<string, ModelUsage>): string {
  let text = '';
  for (const model of Object.keys(byModel)) {
    const u = byModel[model] as ModelUsage;
    text += `${text === '' ? '' : ','}${str(model)}:[${num(u.inputTokens)},${num(
      u.outputTokens,
    )},${num(u.cacheReadInputTokens)},${num(u.cacheCreationInputTokens)},${num(u.costUsd)}]`;
  }
  return `{${text}}`;
}

function pendingText(pending: Record<string, TokenUsage>): string {
  let text = '';
  for (const model of Object.keys(pending)) {
    const t = pending[model] as TokenUsage;
    text += `${text === '' ? '' : ','}${str(model)}:[${num(t.inputTokens)},${num(
      t.outputTokens,
    )},${num(t.cacheReadInputTokens)},${num(t.cacheCreationInputTokens)}]`;
  }
  return `{${text}}`;
}

/** Fields the state has beyond the known ones, as `"name":value` JSON members ('' if none). */
function extraText(state: UsageState): string {
  const fields = Object.keys(state);
  // A state has every known field (the encoding below reads them all), so as many fields as
  // there are known ones means no other.
  if (fields.length === KNOWN_FIELDS.size) return '';
  let extra = '';
  for (const field of fields) {
    if (KNOWN_FIELDS.has(field)) continue;
    // As JSON.stringify() does, a field whose value JSON cannot hold (undefined) is left out.
    const value = JSON.stringify((state as unknown as Record<string, unknown>)[field]);
    if (value === undefined) continue;
    extra += `${extra === '' ? '' : ','}${JSON.stringify(field)}:${value}`;
  }
  return extra;
}

/**
 * The text to store for `state`; decodeUsageState() gives back an equal state. Written out
 * directly rather than through JSON.stringify() of packed arrays: every append runs this.
 */
export function encodeUsageState(state: UsageState): string {
  const { counted, counter, copies } = state;
  const countedModels = modelsText(counted.byModel);
  let counterText = 'null';
  if (counter !== null) {
    const models = sameModels(counter.byModel, counted.byModel) ? '0' : modelsText(counter.byModel);
    counterText = `[${num(counter.startTime)},${num(counter.costUsd)},${num(
      counter.durationMs,
    )},${num(counter.apiDurationMs)},${models}]`;
  }
  const extra = extraText(state);
  return `{"v":2,"c":[${num(counted.costUsd)},${num(counted.turns)},${num(
    counted.durationMs,
  )},${num(counted.apiDurationMs)},${counted.hasUnknownModelCost ? 1 : 0},${countedModels}],"k":${counterText},"r":${strs(
    state.recentCostStates,
  )},"p":${pendingText(state.pending)},"pi":${strs(state.pendingIds)},"ci":${strs(
    state.coveredIds,
  )},"m":[${str(state.lastMessageId)},${num(state.lastMessageAt)}],"cp":${
    copies === null ? 'null' : `[${str(copies.throughId)},${num(copies.notAfter)}]`
  }${extra === '' ? '' : `,"x":{${extra}}`}}`;
}

/** The state stored as `text`, in this codec's form or as the plain JSON of older versions. */
export function decodeUsageState(text: string): UsageState {
  const value = JSON.parse(text) as PackedUsageState | UsageState;
  if (!('v' in value) || value.v !== 2) return value as UsageState;
  const [cost, turns, durationMs, apiDurationMs, unknownCost, byModel] = value.c;
  const counted = {
    costUsd: cost,
    turns,
    durationMs,
    apiDurationMs,
    byModel: unpackModels(byModel),
    hasUnknownModelCost: unknownCost === 1,
  };
  let counter: UsageCounter | null = null;
  if (value.k !== null) {
    const [startTime, counterCost, counterDuration, counterApi, counterModels] = value.k;
    counter = {
      startTime,
      costUsd: counterCost,
      durationMs: counterDuration,
      apiDurationMs: counterApi,
      byModel: unpackModels(counterModels === 0 ? byModel : counterModels),
    };
  }
  const pending: Record<string, TokenUsage> = {};
  for (const model of Object.keys(value.p)) {
    const [i, o, r, w] = value.p[model] as PackedTokens;
    pending[model] = {
      inputTokens: i,
      outputTokens: o,
      cacheReadInputTokens: r,
      cacheCreationInputTokens: w,
    };
  }
  return {
    ...value.x,
    version: 1,
    counted,
    counter,
    recentCostStates: value.r,
    pending,
    pendingIds: value.pi,
    coveredIds: value.ci,
    lastMessageId: value.m[0],
    lastMessageAt: value.m[1],
    copies: value.cp === null ? null : { throughId: value.cp[0], notAfter: value.cp[1] },
  };
}
