/**
 * `sessionhub/server`: the HTTP service as a library, apart from the root entry so that an
 * application using only the stores or the hub never loads Fastify.
 */
export {
  type ConfigSources,
  DEFAULT_CONFIG,
  loadConfig,
  type ServiceConfig,
} from '../config/config.js';
export { buildServer, type ServerOptions, type ServerState } from './app.js';
export { Authenticator, type Caller } from './auth.js';
export { type ErrorBody, statusOf } from './http-errors.js';
export { ServiceMetrics } from './metrics.js';
export { openApiDocument } from './openapi.js';
export { type RunningService, type ServiceIo, startService } from './service.js';
