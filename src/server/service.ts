import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Backend } from '../backends/backend.js';
import { openBackend } from '../backends/open.js';
import type { ServiceConfig } from '../config/config.js';
import { createApiKey } from '../core/api-keys.js';
import { redactUrl } from '../core/backend-url.js';
import { createHub, type SessionHub } from '../hub/hub.js';
import type { AgentOptionName } from '../runner/agent-options.js';
import { type MockAnthropic, startMockAnthropic } from '../testing/mock-anthropic/index.js';
import { buildServer, type ServerState } from './app.js';
import type { ServiceMetrics } from './metrics.js';

export interface RunningService {
  /** Where it listens, e.g. http://127.0.0.1:8787. */
  url: string;
  app: FastifyInstance;
  hub: SessionHub;
  backend: Backend;
  metrics: ServiceMetrics;
  /** The built-in mock Anthropic API, when the service runs with `mockModel`. */
  mock: MockAnthropic | null;
  /** The key created by `bootstrapKey`, shown once; null when none was created. */
  bootstrapToken: string | null;
  /**
   * Stops gracefully: refuse new requests, let running turns finish within the grace period,
   * interrupt what is left (the sessions stay resumable), then close the server, the hub, the
   * backend and the mock. Safe to call more than once.
   */
  shutdown(): Promise<void>;
}

export interface ServiceIo {
  /** Lines for the operator (default: console.log). */
  log?: (line: string) => void;
}

/** Opens the backend, starts the hub with its runner and sweeper, and listens. */
export async function startService(
  config: ServiceConfig,
  io: ServiceIo = {},
): Promise<RunningService> {
  const log = io.log ?? ((line: string) => console.log(line));
  const mock = config.mockModel ? await startMockAnthropic() : null;
  const backend = await openBackend(config.db).catch(async (error: unknown) => {
    await mock?.close();
    throw error;
  });
  let metrics: ServiceMetrics | null = null;
  let state: ServerState | null = null;
  const hub = createHub({
    backend,
    ownsBackend: true,
    runner: {
      dataDir: path.resolve(config.dataDir),
      agent: {
        env: modelEnv(config, mock),
        ...(config.model ? { model: config.model } : {}),
      },
      callerOptions: config.callerOptions as AgentOptionName[],
      warm:
        config.warmSessions > 0
          ? { maxSessions: config.warmSessions, idleMs: config.warmIdleMs }
          : false,
    },
    ...(config.sweepIntervalMs > 0 ? { sweep: { intervalMs: config.sweepIntervalMs } } : {}),
    onSweep: (result) => metrics?.sweep(result),
    onSweepError: (error) => {
      metrics?.sweep(null);
      log(`sweep failed (it runs again next interval): ${(error as Error).message}`);
    },
  });
  try {
    const built = await buildServer({
      hub,
      apiKeys: backend.apiKeys,
      bodyLimitBytes: config.bodyLimitBytes,
      rateLimitPerMinute: config.rateLimitPerMinute === 0 ? false : config.rateLimitPerMinute,
      authCacheMs: config.authCacheMs,
      logger: config.logLevel === 'silent' ? false : { level: config.logLevel },
      version: process.env.npm_package_version,
    });
    metrics = built.metrics;
    state = built.state;
    const bootstrapToken = config.bootstrapKey ? await bootstrapKey(backend, hub) : null;
    const address = await built.app.listen({ host: config.host, port: config.port });
    const url = address.replace('[::1]', 'localhost');

    log(`sessionhub listening on ${url}`);
    log(`  backend: ${redactUrl(config.db)}`);
    log(
      mock
        ? `  model:   the built-in mock Anthropic API at ${mock.url}: replies are SIMULATED, not from Claude`
        : `  model:   Anthropic API${config.anthropicBaseUrl ? ` at ${config.anthropicBaseUrl}` : ''}${config.anthropicApiKey ? '' : ' (no ANTHROPIC_API_KEY set: turns fail unless the Claude CLI is logged in; try --mock-model)'}`,
    );
    if (config.bootstrapKey && !bootstrapToken) {
      log(
        '  API keys exist already, so none was created; make another with `sessionhub keys create --tenant default --owner dev`',
      );
    }
    if (bootstrapToken) {
      log('  API key for tenant "default", owner "dev" (shown once, keep it):');
      log(`    ${bootstrapToken}`);
      log(
        `  try:    curl -s -H "Authorization: Bearer ${bootstrapToken}" -H "content-type: application/json" -d '{"prompt":"Hello"}' ${url}/v1/sessions`,
      );
    }

    let closing: Promise<void> | null = null;
    const shutdown = () => {
      closing ??= (async () => {
        if (state) state.draining = true;
        hub.stopSweeping();
        await waitForTurns(hub, config.shutdownGraceMs);
        const interrupted = await hub.interruptAll();
        if (interrupted > 0)
          log(`interrupted ${interrupted} turn(s) at shutdown; they stay resumable`);
        await built.app.close();
        await hub.close();
        await mock?.close();
      })();
      return closing;
    };
    return {
      url,
      app: built.app,
      hub,
      backend,
      metrics: built.metrics,
      mock,
      bootstrapToken,
      shutdown,
    };
  } catch (error) {
    await hub.close();
    await backend.close();
    await mock?.close();
    throw error;
  }
}

/** The environment the SDK's CLI runs with: the mock, or the configured Anthropic API. */
function modelEnv(config: ServiceConfig, mock: MockAnthropic | null): Record<string, string> {
  if (mock) {
    return {
      ANTHROPIC_BASE_URL: mock.url,
      ANTHROPIC_API_KEY: 'sessionhub-mock-model',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    };
  }
  const env: Record<string, string> = {};
  if (config.anthropicApiKey) env.ANTHROPIC_API_KEY = config.anthropicApiKey;
  if (config.anthropicBaseUrl) env.ANTHROPIC_BASE_URL = config.anthropicBaseUrl;
  return env;
}

/** With no key stored at all, makes a user key for a first try and returns its token. */
async function bootstrapKey(backend: Backend, hub: SessionHub): Promise<string | null> {
  if ((await backend.apiKeys.list()).length > 0) return null;
  const { record, token } = createApiKey(
    { name: 'bootstrap', tenant: 'default', owner: 'dev', role: 'user' },
    hub.clock.now(),
  );
  await backend.apiKeys.insert(record);
  return token;
}

/** Resolves when no turn runs on the hub, or after `graceMs`, whichever comes first. */
async function waitForTurns(hub: SessionHub, graceMs: number): Promise<void> {
  const deadline = Date.now() + graceMs;
  while (hub.runningTurns > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(100, deadline - Date.now())));
  }
}
