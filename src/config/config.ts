import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { DEFAULT_BACKEND_URL } from '../core/backend-url.js';
import { SessionHubError } from '../core/errors.js';

/**
 * The service's configuration, from (lowest to highest precedence) defaults, a JSON file,
 * environment variables and command-line flags. Every value is validated; a bad one is reported
 * with where it came from (`--port`, `SESSIONHUB_PORT`, `port in sessionhub.json`) and what it
 * must be.
 */
export interface ServiceConfig {
  /** Backend URL: sqlite:PATH, postgres://…, redis://…, file:DIR, memory:. */
  db: string;
  host: string;
  port: number;
  /** Tenants' working and config directories for the SDK. */
  dataDir: string;
  /** Run against the built-in mock Anthropic API (simulated replies, no key needed). */
  mockModel: boolean;
  anthropicApiKey: string | undefined;
  anthropicBaseUrl: string | undefined;
  /** The model turns use unless a caller picks another. */
  model: string | undefined;
  /** Options a caller may set per turn. */
  callerOptions: string[];
  /** Background sweep interval; 0 turns it off. */
  sweepIntervalMs: number;
  bodyLimitBytes: number;
  /** Requests per minute per API key; 0 turns the limit off. */
  rateLimitPerMinute: number;
  /** How long running turns may take to finish on shutdown before they are interrupted. */
  shutdownGraceMs: number;
  /** Warm SDK processes kept; 0 turns the warm pool off. */
  warmSessions: number;
  warmIdleMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** With no API key stored yet, create a user key and print it once (for a first try). */
  bootstrapKey: boolean;
  /** How long a looked-up API key is trusted before it is read again (revocation delay). */
  authCacheMs: number;
}

const wholeNumber = (min: number, max: number) => z.number().int().min(min).max(max);

const configSchema = z.strictObject({
  db: z.string().min(1),
  host: z.string().min(1),
  port: wholeNumber(0, 65_535),
  dataDir: z.string().min(1),
  mockModel: z.boolean(),
  anthropicApiKey: z.string().min(1).optional(),
  anthropicBaseUrl: z.url().optional(),
  model: z.string().min(1).optional(),
  callerOptions: z.array(z.string().min(1)),
  sweepIntervalMs: wholeNumber(0, 24 * 60 * 60_000),
  bodyLimitBytes: wholeNumber(1024, 100 * 1024 * 1024),
  rateLimitPerMinute: wholeNumber(0, 1_000_000),
  shutdownGraceMs: wholeNumber(0, 60 * 60_000),
  warmSessions: wholeNumber(0, 10_000),
  warmIdleMs: wholeNumber(1000, 24 * 60 * 60_000),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  bootstrapKey: z.boolean(),
  authCacheMs: wholeNumber(0, 10 * 60_000),
});

type Kind = 'string' | 'number' | 'boolean' | 'list';

/** Each setting: its name in the file, its environment variable and its flag. */
const SETTINGS: Array<{ key: keyof ServiceConfig; env: string; flag: string; kind: Kind }> = [
  { key: 'db', env: 'SESSIONHUB_DB', flag: '--db', kind: 'string' },
  { key: 'host', env: 'SESSIONHUB_HOST', flag: '--host', kind: 'string' },
  { key: 'port', env: 'SESSIONHUB_PORT', flag: '--port', kind: 'number' },
  { key: 'dataDir', env: 'SESSIONHUB_DATA_DIR', flag: '--data-dir', kind: 'string' },
  { key: 'mockModel', env: 'SESSIONHUB_MOCK_MODEL', flag: '--mock-model', kind: 'boolean' },
  { key: 'anthropicApiKey', env: 'ANTHROPIC_API_KEY', flag: '--anthropic-api-key', kind: 'string' },
  {
    key: 'anthropicBaseUrl',
    env: 'ANTHROPIC_BASE_URL',
    flag: '--anthropic-base-url',
    kind: 'string',
  },
  { key: 'model', env: 'SESSIONHUB_MODEL', flag: '--model', kind: 'string' },
  {
    key: 'callerOptions',
    env: 'SESSIONHUB_CALLER_OPTIONS',
    flag: '--caller-options',
    kind: 'list',
  },
  {
    key: 'sweepIntervalMs',
    env: 'SESSIONHUB_SWEEP_INTERVAL_MS',
    flag: '--sweep-interval-ms',
    kind: 'number',
  },
  {
    key: 'bodyLimitBytes',
    env: 'SESSIONHUB_BODY_LIMIT_BYTES',
    flag: '--body-limit-bytes',
    kind: 'number',
  },
  { key: 'rateLimitPerMinute', env: 'SESSIONHUB_RATE_LIMIT', flag: '--rate-limit', kind: 'number' },
  {
    key: 'shutdownGraceMs',
    env: 'SESSIONHUB_SHUTDOWN_GRACE_MS',
    flag: '--shutdown-grace-ms',
    kind: 'number',
  },
  { key: 'warmSessions', env: 'SESSIONHUB_WARM_SESSIONS', flag: '--warm-sessions', kind: 'number' },
  { key: 'warmIdleMs', env: 'SESSIONHUB_WARM_IDLE_MS', flag: '--warm-idle-ms', kind: 'number' },
  { key: 'logLevel', env: 'SESSIONHUB_LOG_LEVEL', flag: '--log-level', kind: 'string' },
  {
    key: 'bootstrapKey',
    env: 'SESSIONHUB_BOOTSTRAP_KEY',
    flag: '--bootstrap-key',
    kind: 'boolean',
  },
  { key: 'authCacheMs', env: 'SESSIONHUB_AUTH_CACHE_MS', flag: '--auth-cache-ms', kind: 'number' },
];

export const CONFIG_SETTINGS: ReadonlyArray<{ key: string; env: string; flag: string }> = SETTINGS;

export const DEFAULT_CONFIG: ServiceConfig = {
  db: DEFAULT_BACKEND_URL,
  host: '127.0.0.1',
  port: 8787,
  dataDir: './.sessionhub',
  mockModel: false,
  anthropicApiKey: undefined,
  anthropicBaseUrl: undefined,
  model: undefined,
  callerOptions: ['model', 'maxTurns'],
  sweepIntervalMs: 60_000,
  bodyLimitBytes: 1024 * 1024,
  rateLimitPerMinute: 600,
  shutdownGraceMs: 30_000,
  warmSessions: 8,
  warmIdleMs: 5 * 60_000,
  logLevel: 'info',
  bootstrapKey: false,
  authCacheMs: 5_000,
};

export interface ConfigSources {
  /** Flag values by setting name (as commander gives them: strings and booleans). */
  flags?: Partial<Record<keyof ServiceConfig, unknown>>;
  env?: Record<string, string | undefined>;
  /** A JSON file; default: $SESSIONHUB_CONFIG if set. */
  file?: string;
}

/** Reads and validates the configuration; throws INVALID_OPTION naming every bad value. */
export function loadConfig(sources: ConfigSources = {}): ServiceConfig {
  const env = sources.env ?? process.env;
  const problems: string[] = [];
  const merged: Record<string, unknown> = { ...DEFAULT_CONFIG };
  const origin: Record<string, string> = {};

  const file = sources.file ?? env.SESSIONHUB_CONFIG;
  if (file) {
    for (const [key, value] of Object.entries(readConfigFile(file))) {
      merged[key] = value;
      origin[key] = `${key} in ${file}`;
    }
  }
  for (const setting of SETTINGS) {
    const text = env[setting.env];
    if (text === undefined || text === '') continue;
    const value = fromText(text, setting.kind);
    if (value === undefined) {
      problems.push(`${setting.env}=${text}: ${expected(setting.kind)}`);
      continue;
    }
    merged[setting.key] = value;
    origin[setting.key] = setting.env;
  }
  for (const setting of SETTINGS) {
    const raw = sources.flags?.[setting.key];
    if (raw === undefined) continue;
    const value = typeof raw === 'string' ? fromText(raw, setting.kind) : raw;
    if (value === undefined) {
      problems.push(`${setting.flag} ${String(raw)}: ${expected(setting.kind)}`);
      continue;
    }
    merged[setting.key] = value;
    origin[setting.key] = setting.flag;
  }
  for (const key of Object.keys(merged)) {
    if (merged[key] === undefined) delete merged[key];
  }
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = String(issue.path[0] ?? '');
      const where = origin[key] ?? (key ? key : 'configuration');
      problems.push(
        issue.code === 'unrecognized_keys'
          ? `${file ?? 'configuration'}: unknown setting(s) ${issue.keys.join(', ')}; known: ${SETTINGS.map((s) => s.key).join(', ')}`
          : `${where} (${JSON.stringify(merged[key])}): ${issue.message}`,
      );
    }
  }
  if (problems.length > 0) {
    throw new SessionHubError(
      'INVALID_OPTION',
      `The configuration has problems:\n  - ${problems.join('\n  - ')}`,
      { problems },
    );
  }
  return { ...DEFAULT_CONFIG, ...(parsed.data as Partial<ServiceConfig>) };
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new SessionHubError(
      'INVALID_OPTION',
      `Cannot read the configuration file ${file}: ${(error as Error).message}. Check the path given to --config or SESSIONHUB_CONFIG.`,
      { file },
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new SessionHubError(
      'INVALID_OPTION',
      `The configuration file ${file} is not valid JSON: ${(error as Error).message}.`,
      { file },
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SessionHubError(
      'INVALID_OPTION',
      `The configuration file ${file} must hold one JSON object, such as {"port": 8787}.`,
      { file },
    );
  }
  return value as Record<string, unknown>;
}

function fromText(text: string, kind: Kind): unknown {
  switch (kind) {
    case 'string':
      return text;
    case 'number':
      return /^\d+$/.test(text.trim()) ? Number(text.trim()) : undefined;
    case 'boolean': {
      const lower = text.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(lower)) return true;
      if (['0', 'false', 'no', 'off'].includes(lower)) return false;
      return undefined;
    }
    case 'list':
      return text
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '');
  }
}

function expected(kind: Kind): string {
  switch (kind) {
    case 'number':
      return 'must be a whole number';
    case 'boolean':
      return 'must be true or false (or 1/0, yes/no, on/off)';
    case 'list':
      return 'must be a comma-separated list';
    default:
      return 'must be text';
  }
}
