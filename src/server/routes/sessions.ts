import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SessionHubError } from '../../core/errors.js';
import type { SessionHub } from '../../hub/hub.js';
// The hub validates policy overrides itself; the HTTP schemas only pass them through.
import type { CreateInput, UpdateInput } from '../../hub/inputs.js';
import type { Turn } from '../../runner/turn.js';
import type { Caller } from '../auth.js';
import type { ServiceMetrics } from '../metrics.js';
import {
  createBody,
  extendBody,
  forkBody,
  listQuery,
  messageBody,
  parseBody,
  patchBody,
  pathId,
  statsQuery,
  transcriptQuery,
} from '../schemas.js';
import { answerTurn, streamTurn, wantsEventStream } from '../turns.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent the request, from its API key (set for every /v1 route). */
    caller: Caller | null;
  }
}

function callerOf(request: FastifyRequest): Caller {
  if (!request.caller) {
    // The auth hook runs before every /v1 route; reaching here without it is a wiring bug.
    throw new SessionHubError('UNAUTHORIZED', 'This request was not authenticated.', {});
  }
  return request.caller;
}

/** The session routes of the API, under /v1. */
export function sessionRoutes(
  app: FastifyInstance,
  hub: SessionHub,
  metrics: ServiceMetrics,
): void {
  /** Streams the turn or answers with its outcome, as the client asked; counts it either way. */
  const replyWithTurn = (
    request: FastifyRequest,
    reply: FastifyReply,
    turn: Turn,
    status: number,
  ) => {
    turn.done().then(
      (outcome) => metrics.turn(outcome),
      () => {},
    );
    return wantsEventStream(request)
      ? streamTurn(request, reply, turn, status)
      : answerTurn(reply, turn, status);
  };

  app.post('/v1/sessions', async (request, reply) => {
    const { identity } = callerOf(request);
    const { prompt, options, waitMs, id, ...session } = parseBody(
      createBody,
      request.body,
      'session',
    );
    if (prompt === undefined) {
      if (options !== undefined || waitMs !== undefined) {
        throw new SessionHubError(
          'INVALID_INPUT',
          '`options` and `waitMs` go with a `prompt`: give a first prompt, or leave them out.',
          {},
        );
      }
      const input = (id === undefined ? session : { ...session, id }) as CreateInput;
      return reply.code(201).send(await hub.create(identity, input));
    }
    if (id !== undefined) {
      throw new SessionHubError(
        'INVALID_INPUT',
        'A session started with a prompt gets a new id; leave out `id`, or create the session first and then send the prompt.',
        {},
      );
    }
    const turn = hub.start({ identity, prompt, options, waitMs, session: session as CreateInput });
    return replyWithTurn(request, reply, turn, 201);
  });

  app.get('/v1/sessions', async (request) => {
    const { identity } = callerOf(request);
    return hub.list(identity, parseBody(listQuery, request.query, 'list query'));
  });

  app.get('/v1/sessions/:id', async (request) =>
    hub.get(callerOf(request).identity, pathId(request.params)),
  );

  app.patch('/v1/sessions/:id', async (request) => {
    const body = parseBody(patchBody, request.body, 'update') as UpdateInput;
    return hub.update(callerOf(request).identity, pathId(request.params), body);
  });

  app.delete('/v1/sessions/:id', async (request, reply) => {
    await hub.delete(callerOf(request).identity, pathId(request.params));
    return reply.code(204).send();
  });

  app.post('/v1/sessions/:id/messages', async (request, reply) => {
    const { identity } = callerOf(request);
    const { prompt, options, waitMs } = parseBody(messageBody, request.body, 'message');
    const turn = hub.send(pathId(request.params), prompt, { identity, options, waitMs });
    return replyWithTurn(request, reply, turn, 200);
  });

  app.get('/v1/sessions/:id/messages', async (request) => {
    const { limit, cursor } = parseBody(transcriptQuery, request.query, 'transcript query');
    const entries = await hub.transcript(callerOf(request).identity, pathId(request.params));
    const start = cursor === undefined ? 0 : Number(cursor);
    const page = entries.slice(start, start + limit);
    const end = start + page.length;
    return {
      entries: page,
      total: entries.length,
      nextCursor: end < entries.length ? String(end) : null,
    };
  });

  app.post('/v1/sessions/:id/fork', async (request, reply) => {
    const { identity } = callerOf(request);
    const { prompt, options, waitMs, ...fork } = parseBody(forkBody, request.body, 'fork');
    const id = pathId(request.params);
    if (prompt === undefined) return reply.code(201).send(await hub.fork(identity, id, fork));
    const turn = hub.fork(identity, id, { ...fork, prompt, options, waitMs });
    return replyWithTurn(request, reply, turn, 201);
  });

  app.post('/v1/sessions/:id/archive', async (request) =>
    hub.archive(callerOf(request).identity, pathId(request.params)),
  );

  app.post('/v1/sessions/:id/unarchive', async (request) =>
    hub.unarchive(callerOf(request).identity, pathId(request.params)),
  );

  app.post('/v1/sessions/:id/extend', async (request) => {
    const body = parseBody(extendBody, request.body, 'extension (give { byMs } or { until })');
    return hub.extend(callerOf(request).identity, pathId(request.params), body);
  });

  app.post('/v1/sessions/:id/interrupt', async (request) => {
    const interrupted = await hub.interrupt(callerOf(request).identity, pathId(request.params));
    return { interrupted };
  });

  app.get('/v1/sessions/:id/lineage', async (request) =>
    hub.lineage(callerOf(request).identity, pathId(request.params)),
  );

  app.get('/v1/stats', async (request) =>
    hub.stats(callerOf(request).identity, parseBody(statsQuery, request.query, 'stats query')),
  );
}
