/**
 * `npm start`: a short, offline demonstration of the session hub with the real Agent SDK. It
 * starts the built-in mock Anthropic API, registers a session for a user on the configured backend
 * (the embedded SQLite default), runs a turn, resumes it as a second host with an empty disk, and
 * shows the record the hub keeps: owner, expiry, usage and cost folded from the transcript.
 * Replaced by `sessionhub serve` when the HTTP service lands.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { query, type SDKResultMessage } from '@anthropic-ai/claude-agent-sdk';
import { DEFAULT_BACKEND_URL, redactUrl } from './core/backend-url.js';
import type { Identity } from './core/identity.js';
import { openHub } from './hub/hub.js';
import { mockModelEnv, startMockAnthropic } from './testing/mock-anthropic/index.js';

const backendUrl = process.env.SESSIONHUB_DB ?? DEFAULT_BACKEND_URL;
const mock = await startMockAnthropic();
const hub = await openHub(backendUrl);
const hosts: string[] = [];
const user: Identity = { tenant: 'demo', owner: 'alice' };

/** One turn on one "host": a CLAUDE_CONFIG_DIR of its own, so nothing is shared but the store. */
async function turn(
  prompt: string,
  session: { sessionId: string } | { resume: string },
): Promise<SDKResultMessage> {
  const configDir = await mkdtemp(path.join(tmpdir(), 'sessionhub-demo-host-'));
  hosts.push(configDir);
  const env = mockModelEnv(mock.url, configDir);
  let result: SDKResultMessage | undefined;
  for await (const message of query({
    prompt,
    options: { sessionStore: hub.transcriptStore(user), env, ...session },
  })) {
    if (message.type === 'result') result = message;
  }
  if (!result) throw new Error('query() ended without a result');
  return result;
}

try {
  console.log(`sessionhub demo
  backend: ${redactUrl(backendUrl)}
  model:   the built-in mock Anthropic API at ${mock.url}
           (replies are SIMULATED: no API key is used and nothing leaves this machine)
`);
  const created = await hub.create(user, { title: 'Demo: remember a word', tags: ['demo'] });
  console.log(`hub     registered session ${created.id} for ${user.owner} (tenant ${user.tenant})`);
  console.log(
    `        it expires ${new Date(created.expiresAt ?? 0).toISOString()} if left idle until then`,
  );

  await hub.admitTurn(user, created.id);
  const first = await turn('Hello! Please remember the word "lighthouse".', {
    sessionId: created.id,
  });
  await hub.recordActivity(user, created.id);
  console.log(`host A  ran the first turn`);
  console.log(`        reply: ${first.subtype === 'success' ? first.result : first.subtype}`);

  await hub.admitTurn(user, created.id);
  const second = await turn('Which word did I ask you to remember?', { resume: created.id });
  await hub.recordActivity(user, created.id);
  const request = mock.conversationRequests.at(-1);
  console.log(`host B  resumed it from the store with an empty disk`);
  const turns = request?.body.messages.filter((m) => m.role !== 'system').length ?? 0;
  const sawFirstPrompt = request?.transcriptText.includes('lighthouse') ?? false;
  console.log(
    `        the model received ${turns} user/assistant messages; the first prompt among them: ${sawFirstPrompt ? 'yes' : 'NO'}`,
  );
  console.log(`        reply: ${second.subtype === 'success' ? second.result : second.subtype}`);

  const record = await hub.get(user, created.id);
  const { usage } = record;
  console.log(`\nThe record, with usage folded from the transcript the SDK wrote:
  status ${record.status}, ${usage.turns} turns, $${usage.costUsd.toFixed(6)} (simulated prices)
  tokens: ${usage.tokens.inputTokens} in, ${usage.tokens.outputTokens} out, ${usage.tokens.cacheReadInputTokens} cache read, ${usage.tokens.cacheCreationInputTokens} cache write`);

  const page = await hub.list(user, { limit: 5 });
  const stats = await hub.stats(user);
  console.log(
    `\n${user.owner} has ${stats.sessions.total} session(s), $${stats.usage.total.costUsd.toFixed(6)} spent in the last 30 days; newest first:`,
  );
  for (const session of page.sessions) {
    console.log(
      `  ${session.id}  ${new Date(session.createdAt).toISOString()}  ${session.usage.turns} turns  ${session.title ?? ''}`,
    );
  }
  console.log(
    `\nRun it again and the list grows: sessions live in ${redactUrl(backendUrl)}, not in ~/.claude.`,
  );
} finally {
  await hub.close();
  await mock.close();
  await Promise.all(hosts.map((dir) => rm(dir, { recursive: true, force: true })));
}
