import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyServerOptions, LogController } from 'fastify';
import type { ApiKeyStore } from '../core/api-keys.js';
import { SessionHubError } from '../core/errors.js';
import type { SessionHub } from '../hub/hub.js';
import { Authenticator } from './auth.js';
import { errorBody, internalError, statusOf, toApiError } from './http-errors.js';
import { ServiceMetrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { sessionRoutes } from './routes/sessions.js';

export interface ServerOptions {
  hub: SessionHub;
  apiKeys: ApiKeyStore;
  /** Largest request body accepted, in bytes (default 1 MiB); larger ones get 413. */
  bodyLimitBytes?: number;
  /** Requests per minute per API key, unless the key sets its own (default 600; false: none). */
  rateLimitPerMinute?: number | false;
  /** How long a looked-up API key is trusted before it is read again (default 5 s). */
  authCacheMs?: number;
  /** Fastify's logger option (default: off). */
  logger?: FastifyServerOptions['logger'];
  /** Metrics to record into (default: a new set, served at /metrics). */
  metrics?: ServiceMetrics;
  /** The version reported in the OpenAPI document. */
  version?: string;
}

/** A running service's switches that shutdown flips. */
export interface ServerState {
  /** Set once shutdown begins: /readyz answers 503 and new API requests are refused. */
  draining: boolean;
}

const DEFAULT_BODY_LIMIT = 1024 * 1024;

/**
 * The HTTP API on a hub: authentication by API key, per-key rate limits, the session routes,
 * health, readiness, metrics and the OpenAPI document. Not listening yet: call `listen()`, or
 * `inject()` in tests.
 */
export async function buildServer(options: ServerOptions): Promise<{
  app: FastifyInstance;
  metrics: ServiceMetrics;
  state: ServerState;
  /** Every route the server answers, as `METHOD /path/:param`. */
  routes: string[];
}> {
  const { hub } = options;
  const state: ServerState = { draining: false };
  const metrics =
    options.metrics ??
    new ServiceMetrics({
      runningTurns: () => hub.runningTurns,
      warmSessions: () => hub.warmSessions,
    });
  const auth = new Authenticator(options.apiKeys, hub.clock, { cacheMs: options.authCacheMs });
  const app = Fastify({
    logger: options.logger ?? false,
    // One line per request is noise at info level; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT,
    // A turn streams for as long as it runs; only idle connections time out.
    requestTimeout: 0,
    return503OnClosing: true,
  });
  app.decorateRequest('caller', null);
  const routes: string[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      if (method !== 'HEAD') routes.push(`${method} ${route.url}`);
    }
  });

  app.setErrorHandler((error, request, reply) => {
    const apiError = toApiError(error) ?? internalError(request.id);
    if (apiError.code === 'INTERNAL') request.log.error({ err: error }, 'request failed');
    metrics.error(apiError.code);
    if (apiError.code === 'RATE_LIMITED') {
      const retryAfter = reply.getHeader('retry-after');
      if (retryAfter !== undefined) apiError.details.retryAfterSeconds = Number(retryAfter);
    }
    return reply.code(statusOf(apiError)).send(errorBody(apiError));
  });
  app.setNotFoundHandler((request, reply) => {
    const error = new SessionHubError(
      'ROUTE_NOT_FOUND',
      `There is no ${request.method} ${request.url.split('?')[0]} in this API; see /v1/openapi.json.`,
      { method: request.method },
    );
    metrics.error(error.code);
    return reply.code(404).send(errorBody(error));
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.request(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
  });

  // Every /v1 route but the document needs a key; the key decides the caller and its limit.
  app.addHook('onRequest', async (request) => {
    const url = request.url;
    if (!url.startsWith('/v1/') || url.startsWith('/v1/openapi.json')) return;
    if (state.draining) {
      throw new SessionHubError(
        'UNAVAILABLE',
        'This instance is shutting down; retry the request (another instance, or this one once restarted, will take it).',
        {},
      );
    }
    request.caller = await auth.authenticate(request.headers.authorization);
  });

  if (options.rateLimitPerMinute !== false) {
    const perMinute = options.rateLimitPerMinute ?? 600;
    await app.register(rateLimit, {
      global: true,
      // After authentication, so the limit is the key's.
      hook: 'preHandler',
      timeWindow: 60_000,
      max: (request) => request.caller?.key.rateLimitPerMinute ?? perMinute,
      keyGenerator: (request) => request.caller?.key.id ?? `ip:${request.ip}`,
      allowList: (request) => request.caller === null,
      errorResponseBuilder: (_request, context) => {
        const error = new SessionHubError(
          'RATE_LIMITED',
          `This API key may make ${context.max} requests a minute; retry in ${Math.ceil(context.ttl / 1000)} s.`,
          { limitPerMinute: context.max, retryAfterSeconds: Math.ceil(context.ttl / 1000) },
        );
        return Object.assign(error, { statusCode: 429 });
      },
    });
  }

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (state.draining) {
      return reply
        .code(503)
        .send(errorBody(new SessionHubError('UNAVAILABLE', 'Shutting down.', {})));
    }
    // Any read reaches the backend; a record nobody has is the cheapest.
    await hub.backend.registry.get('sessionhub-readiness', '00000000-0000-0000-0000-000000000000');
    return { status: 'ready', backend: hub.backend.kind };
  });
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  const document = openApiDocument(options.version ?? '0.0.0');
  app.get('/v1/openapi.json', async () => document);

  sessionRoutes(app, hub, metrics);
  return { app, metrics, state, routes };
}
