import type { HookCallbackMatcher, HookEvent, Options } from '@anthropic-ai/claude-agent-sdk';
import { z } from 'zod';
import { SessionHubError } from '../core/errors.js';

/**
 * What a turn's SDK process runs with: set per hub, overridden per tenant, and per call only
 * for the options the hub allows callers to choose. Everything else query() needs (the store,
 * the working directory, the config dir, resume, budget) the runner sets itself.
 */
export interface AgentOptions {
  model?: string;
  systemPrompt?: Options['systemPrompt'];
  allowedTools?: string[];
  disallowedTools?: string[];
  permissionMode?: NonNullable<Options['permissionMode']>;
  maxTurns?: number;
  mcpServers?: Options['mcpServers'];
  /** Extra environment for the CLI (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, ...). */
  env?: Record<string, string>;
  /** SDK hooks; a tenant's are added after the hub's, event by event. */
  hooks?: Partial<Record<HookEvent, HookCallbackMatcher[]>>;
}

export type AgentOptionName = keyof AgentOptions;

export const AGENT_OPTION_NAMES = [
  'model',
  'systemPrompt',
  'allowedTools',
  'disallowedTools',
  'permissionMode',
  'maxTurns',
  'mcpServers',
  'env',
  'hooks',
] as const satisfies readonly AgentOptionName[];

/** What callers may choose per call unless the hub says otherwise: nothing that widens access. */
export const DEFAULT_CALLER_OPTIONS: readonly AgentOptionName[] = ['model', 'maxTurns'];

const toolList = z.array(z.string().min(1).max(200)).max(500);

/** Per-call options as they arrive from outside; hooks and MCP servers only from code. */
const callerSchemas = {
  model: z.string().min(1).max(200),
  systemPrompt: z.union([
    z.string().max(200_000),
    z.strictObject({
      type: z.literal('preset'),
      preset: z.literal('claude_code'),
      append: z.string().max(200_000).optional(),
    }),
  ]),
  allowedTools: toolList,
  disallowedTools: toolList,
  permissionMode: z.enum([
    'default',
    'acceptEdits',
    'bypassPermissions',
    'plan',
    'dontAsk',
    'auto',
  ]),
  maxTurns: z.number().int().min(1).max(10_000),
  mcpServers: z.record(z.string(), z.unknown()),
  env: z.record(z.string().min(1).max(200), z.string().max(100_000)),
  hooks: z.record(z.string(), z.array(z.unknown())),
} satisfies Record<AgentOptionName, z.ZodType>;

/**
 * Validates a caller's per-call options against what the hub allows. An option outside the
 * allow-list is FORBIDDEN (naming what is allowed); a malformed value is INVALID_OPTION.
 */
export function parseCallerOptions(
  input: unknown,
  allowed: readonly AgentOptionName[],
): AgentOptions {
  if (input === undefined) return {};
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new SessionHubError('INVALID_OPTION', 'Turn options must be an object.', {
      options: typeof input,
    });
  }
  const result: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(input)) {
    if (value === undefined) continue;
    if (!(AGENT_OPTION_NAMES as readonly string[]).includes(name)) {
      throw new SessionHubError(
        'INVALID_OPTION',
        `Unknown turn option "${name}". Known options: ${AGENT_OPTION_NAMES.join(', ')}.`,
        { option: name },
      );
    }
    if (!allowed.includes(name as AgentOptionName)) {
      throw new SessionHubError(
        'FORBIDDEN',
        `This hub does not let callers set "${name}" per turn. Allowed: ${allowed.join(', ') || 'none'}; the operator sets the rest per hub or per tenant.`,
        { option: name, allowed: [...allowed] },
      );
    }
    const parsed = callerSchemas[name as AgentOptionName].safeParse(value);
    if (!parsed.success) {
      throw new SessionHubError(
        'INVALID_OPTION',
        `Turn option "${name}" is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || name} ${i.message}`).join('; ')}.`,
        { option: name },
      );
    }
    result[name] = parsed.data;
  }
  return result as AgentOptions;
}

/** Layers options: later layers win per option; env merges by variable, hooks by event. */
export function mergeAgentOptions(...layers: Array<AgentOptions | undefined>): AgentOptions {
  const merged: AgentOptions = {};
  for (const layer of layers) {
    if (!layer) continue;
    for (const name of AGENT_OPTION_NAMES) {
      const value = layer[name];
      if (value === undefined) continue;
      if (name === 'env') {
        merged.env = { ...merged.env, ...(value as Record<string, string>) };
      } else if (name === 'hooks') {
        const hooks = { ...merged.hooks };
        for (const [event, matchers] of Object.entries(value as AgentOptions['hooks'] & object)) {
          const key = event as HookEvent;
          hooks[key] = [...(hooks[key] ?? []), ...(matchers ?? [])];
        }
        merged.hooks = hooks;
      } else {
        (merged as Record<string, unknown>)[name] = value;
      }
    }
  }
  return merged;
}

/**
 * A fingerprint of what a live process was started with: a warm process is reused only for a
 * turn with the same options, since most of them cannot change in a running process.
 */
export function agentOptionsKey(options: AgentOptions): string {
  const { hooks, mcpServers, ...plain } = options;
  return JSON.stringify(
    [
      plain,
      // Functions do not serialise; the hooks' shape and identity-free names stand in for them.
      Object.keys(hooks ?? {}).sort(),
      Object.keys(mcpServers ?? {}).sort(),
    ],
    (_key, value: unknown) =>
      value && typeof value === 'object' && !Array.isArray(value)
        ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : value,
  );
}
