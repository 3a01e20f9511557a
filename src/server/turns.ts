import type { FastifyReply, FastifyRequest } from 'fastify';
import { SessionHubError } from '../core/errors.js';
import type { Turn, TurnOutcome } from '../runner/turn.js';
import { errorBody, internalError, toApiError } from './http-errors.js';

/**
 * A turn over HTTP: streamed as server-sent events when the client asks for
 * `text/event-stream`, else answered once it is over.
 *
 * The stream: one event per SDK message or sessionhub event, named by its `type` (`system`,
 * `assistant`, `user`, `result`, `sessionhub_retry`, ...), then `done` with the outcome, or
 * `error` with the API error shape. A refusal before the turn starts (busy, expired, over a
 * limit) is a plain JSON error with its status: nothing has been streamed yet. A client that goes
 * away does not stop the turn; it finishes and is stored (interrupt it to stop it).
 */

/** How often an idle stream gets a comment line, so proxies keep it open. */
const HEARTBEAT_MS = 15_000;

export function wantsEventStream(request: FastifyRequest): boolean {
  return (request.headers.accept ?? '').includes('text/event-stream');
}

/** The outcome as the API returns it. */
export function outcomeBody(outcome: TurnOutcome) {
  return {
    sessionId: outcome.sessionId,
    status: outcome.status,
    text: outcome.text,
    error: outcome.error,
    attempts: outcome.attempts,
    warm: outcome.warm,
    spent: outcome.spent,
    result: outcome.result,
    session: outcome.session,
  };
}

/**
 * Waits for the turn and answers with its outcome: `successStatus` for a turn that completed,
 * stopped at a limit or was interrupted, 502 TURN_FAILED (with the outcome in details) for one
 * that failed.
 */
export async function answerTurn(reply: FastifyReply, turn: Turn, successStatus: number) {
  const outcome = await turn.done();
  if (outcome.status === 'failed') {
    throw new SessionHubError(
      'TURN_FAILED',
      `The turn failed (${outcome.error?.kind ?? 'unknown'}): ${outcome.error?.message ?? ''}. The session is kept and resumable; send again.`,
      { turn: outcomeBody(outcome) },
    );
  }
  return reply.code(successStatus).send(outcomeBody(outcome));
}

export async function streamTurn(
  request: FastifyRequest,
  reply: FastifyReply,
  turn: Turn,
  status: number,
): Promise<void> {
  const events = turn[Symbol.asyncIterator]();
  // Refusals surface here, before anything is written: they get a plain error response.
  const first = await events.next();
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(status, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  const write = (event: string, data: unknown) => {
    if (raw.writableEnded || raw.destroyed) return;
    raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const heartbeat = setInterval(() => {
    if (!raw.writableEnded && !raw.destroyed) raw.write(': keep-alive\n\n');
  }, HEARTBEAT_MS);
  heartbeat.unref();
  try {
    let next = first;
    while (!next.done) {
      write(next.value.type, next.value);
      next = await events.next();
    }
    write('done', outcomeBody(await turn.done()));
  } catch (error) {
    const apiError = toApiError(error) ?? internalError(request.id);
    if (apiError.code === 'INTERNAL') request.log.error({ err: error }, 'turn failed in a stream');
    write('error', errorBody(apiError));
  } finally {
    clearInterval(heartbeat);
    if (!raw.writableEnded) raw.end();
  }
}
