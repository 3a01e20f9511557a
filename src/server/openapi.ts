import { z } from 'zod';
import { ERROR_CODES } from '../core/errors.js';
import {
  createBody,
  extendBody,
  forkBody,
  listQuery,
  messageBody,
  patchBody,
  statsQuery,
  transcriptQuery,
} from './schemas.js';

/**
 * The OpenAPI 3.1 document served at /v1/openapi.json. Request bodies and query parameters come
 * from the same zod schemas that validate them, so the document cannot drift from the checks.
 */

const jsonSchema = (schema: z.ZodType) =>
  z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' });

function queryParameters(schema: z.ZodObject) {
  return Object.entries(schema.shape).map(([name, field]) => ({
    name,
    in: 'query',
    required: false,
    schema: jsonSchema(field as z.ZodType),
  }));
}

const idParameter = {
  name: 'id',
  in: 'path',
  required: true,
  description: 'The session id (the SDK session UUID).',
  schema: { type: 'string', format: 'uuid' },
};

const errorResponse = { $ref: '#/components/responses/Error' };
const errors = {
  '401': errorResponse,
  '404': errorResponse,
  '409': errorResponse,
  '410': errorResponse,
  '422': errorResponse,
  '429': errorResponse,
};

const json = (schemaRef: string, description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: `#/components/schemas/${schemaRef}` } } },
});

const turnResponse = (status: string) => ({
  [status]: {
    description:
      'The turn: its outcome as JSON, or with `Accept: text/event-stream` a stream of server-sent events (one per SDK message, then `done` with the outcome or `error`).',
    content: {
      'application/json': { schema: { $ref: '#/components/schemas/TurnOutcome' } },
      'text/event-stream': { schema: { type: 'string' } },
    },
  },
  '402': errorResponse,
  '502': errorResponse,
});

const body = (schema: z.ZodType, required = true) => ({
  required,
  content: { 'application/json': { schema: jsonSchema(schema) } },
});

const action = (summary: string) => ({
  post: {
    summary,
    parameters: [idParameter],
    responses: { '200': json('Session', 'The session after the change.'), ...errors },
  },
});

export function openApiDocument(version: string) {
  return {
    openapi: '3.1.0',
    info: {
      title: 'sessionhub',
      version,
      description:
        'Durable, multi-user sessions for agents built on the Claude Agent SDK. Authenticate with `Authorization: Bearer <API key>`.',
    },
    security: [{ apiKey: [] }],
    paths: {
      '/v1/sessions': {
        post: {
          summary: 'Create a session; with a `prompt`, also run its first turn.',
          requestBody: body(createBody, false),
          responses: {
            ...turnResponse('201'),
            '201': {
              description:
                'Without a prompt: the new session. With one: the first turn (JSON outcome, or an event stream).',
              content: {
                'application/json': {
                  schema: {
                    oneOf: [
                      { $ref: '#/components/schemas/Session' },
                      { $ref: '#/components/schemas/TurnOutcome' },
                    ],
                  },
                },
                'text/event-stream': { schema: { type: 'string' } },
              },
            },
            ...errors,
          },
        },
        get: {
          summary: 'List the sessions visible to the key, newest first, a page at a time.',
          parameters: queryParameters(listQuery),
          responses: {
            '200': json('SessionPage', 'One page and the cursor of the next.'),
            ...errors,
          },
        },
      },
      '/v1/sessions/{id}': {
        get: {
          summary: 'One session.',
          parameters: [idParameter],
          responses: { '200': json('Session', 'The session.'), ...errors },
        },
        patch: {
          summary:
            'Change title, tags (replaced), metadata (replaced), expiry and limits (merged).',
          parameters: [idParameter],
          requestBody: body(patchBody),
          responses: { '200': json('Session', 'The session after the change.'), ...errors },
        },
        delete: {
          summary: 'Delete the session, its transcript and its subagent transcripts.',
          parameters: [idParameter],
          responses: { '204': { description: 'Deleted.' }, ...errors },
        },
      },
      '/v1/sessions/{id}/messages': {
        post: {
          summary: 'Run the next turn.',
          parameters: [idParameter],
          requestBody: body(messageBody),
          responses: { ...turnResponse('200'), ...errors },
        },
        get: {
          summary: 'The stored transcript, oldest entry first, a page at a time.',
          parameters: [idParameter, ...queryParameters(transcriptQuery)],
          responses: { '200': json('TranscriptPage', 'One page of entries.'), ...errors },
        },
      },
      '/v1/sessions/{id}/fork': {
        post: {
          summary:
            'Fork the session (at a message or at its end); with a `prompt`, run a turn on the fork.',
          parameters: [idParameter],
          requestBody: body(forkBody, false),
          responses: { ...turnResponse('201'), ...errors },
        },
      },
      '/v1/sessions/{id}/archive': action('Archive: never expires, takes no turns.'),
      '/v1/sessions/{id}/unarchive': action('Unarchive.'),
      '/v1/sessions/{id}/extend': {
        post: {
          summary: 'Push the deadline, by `byMs` or to `until`.',
          parameters: [idParameter],
          requestBody: body(extendBody),
          responses: { '200': json('Session', 'The session after the change.'), ...errors },
        },
      },
      '/v1/sessions/{id}/interrupt': {
        post: {
          summary: 'Interrupt the turn running on the session (on the instance that runs it).',
          parameters: [idParameter],
          responses: {
            '200': {
              description: 'Whether a turn was interrupted.',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: { interrupted: { type: 'boolean' } },
                    required: ['interrupted'],
                  },
                },
              },
            },
            ...errors,
          },
        },
      },
      '/v1/sessions/{id}/lineage': {
        get: {
          summary: 'Ancestors and descendants (forks) visible to the key.',
          parameters: [idParameter],
          responses: { '200': { description: 'The lineage.' }, ...errors },
        },
      },
      '/v1/stats': {
        get: {
          summary: 'Session counts by status and usage per owner and day.',
          parameters: queryParameters(statsQuery),
          responses: { '200': { description: 'The figures.' }, ...errors },
        },
      },
      '/healthz': {
        get: {
          summary: 'The process is up.',
          security: [],
          responses: { '200': { description: 'Up.' } },
        },
      },
      '/readyz': {
        get: {
          summary: 'The backend answers and the service is not shutting down.',
          security: [],
          responses: { '200': { description: 'Ready.' }, '503': errorResponse },
        },
      },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics.',
          security: [],
          responses: { '200': { description: 'Metrics, text exposition format.' } },
        },
      },
    },
    components: {
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } },
      responses: {
        Error: {
          description: 'An error: a stable code, a message that says what to do, details.',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
        },
      },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message', 'details'],
              properties: {
                code: { type: 'string', enum: [...ERROR_CODES] },
                message: { type: 'string' },
                details: { type: 'object' },
              },
            },
          },
        },
        Session: {
          type: 'object',
          description:
            'A session record: owner, status, deadlines, usage and cost, policies, lineage.',
          required: ['id', 'tenant', 'owner', 'status', 'createdAt', 'usage', 'version'],
          properties: {
            id: { type: 'string', format: 'uuid' },
            tenant: { type: 'string' },
            owner: { type: 'string' },
            title: { type: ['string', 'null'] },
            tags: { type: 'array', items: { type: 'string' } },
            metadata: { type: 'object' },
            status: { type: 'string', enum: ['active', 'archived', 'expired', 'failed'] },
            createdAt: { type: 'integer' },
            lastActiveAt: { type: 'integer' },
            expiresAt: { type: ['integer', 'null'] },
            expiredAt: { type: ['integer', 'null'] },
            purgeAt: { type: ['integer', 'null'] },
            forkedFrom: { type: ['object', 'null'] },
            usage: { type: 'object' },
            expiry: { type: 'object' },
            limits: { type: 'object' },
            overrides: { type: 'object' },
            version: { type: 'integer' },
          },
        },
        SessionPage: {
          type: 'object',
          required: ['sessions', 'nextCursor'],
          properties: {
            sessions: { type: 'array', items: { $ref: '#/components/schemas/Session' } },
            nextCursor: { type: ['string', 'null'] },
          },
        },
        TranscriptPage: {
          type: 'object',
          required: ['entries', 'total', 'nextCursor'],
          properties: {
            entries: { type: 'array', items: { type: 'object' } },
            total: { type: 'integer' },
            nextCursor: { type: ['string', 'null'] },
          },
        },
        TurnOutcome: {
          type: 'object',
          required: ['sessionId', 'status', 'text', 'attempts', 'warm', 'session'],
          properties: {
            sessionId: { type: 'string', format: 'uuid' },
            status: { type: 'string', enum: ['completed', 'stopped', 'interrupted', 'failed'] },
            text: { type: 'string' },
            error: { type: ['object', 'null'] },
            attempts: { type: 'integer' },
            warm: { type: 'boolean' },
            spent: { type: 'object', description: 'Cost, tokens and turns this turn added.' },
            result: { type: ['object', 'null'], description: "The SDK's result message." },
            session: { $ref: '#/components/schemas/Session' },
          },
        },
      },
    },
  };
}
