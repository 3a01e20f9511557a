/**
 * `npm start`: a short, offline demonstration of the stores with the real Agent SDK. It starts
 * the built-in mock Anthropic API, runs a session whose transcript goes to the configured backend
 * (the embedded SQLite default), resumes it as a second host with an empty disk, and shows what
 * the store holds. Replaced by `sessionhub serve` when the HTTP service lands.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { listSessions, query, type SDKResultMessage } from '@anthropic-ai/claude-agent-sdk';
import { openBackend } from './backends/open.js';
import { DEFAULT_BACKEND_URL, redactUrl } from './core/backend-url.js';
import { mockModelEnv, startMockAnthropic } from './testing/mock-anthropic/index.js';

const backendUrl = process.env.SESSIONHUB_DB ?? DEFAULT_BACKEND_URL;
const mock = await startMockAnthropic();
const backend = await openBackend(backendUrl);
const hosts: string[] = [];

/** One turn on one "host": a CLAUDE_CONFIG_DIR of its own, so nothing is shared but the store. */
async function turn(prompt: string, resume?: string): Promise<SDKResultMessage> {
  const configDir = await mkdtemp(path.join(tmpdir(), 'sessionhub-demo-host-'));
  hosts.push(configDir);
  const env = mockModelEnv(mock.url, configDir);
  let result: SDKResultMessage | undefined;
  for await (const message of query({
    prompt,
    options: { sessionStore: backend.store, env, ...(resume ? { resume } : {}) },
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
  const first = await turn('Hello! Please remember the word "lighthouse".');
  console.log(`host A  started session ${first.session_id}`);
  console.log(`        reply: ${first.subtype === 'success' ? first.result : first.subtype}`);

  const second = await turn('Which word did I ask you to remember?', first.session_id);
  const request = mock.conversationRequests.at(-1);
  console.log(`host B  resumed it from the store with an empty disk`);
  const turns = request?.body.messages.filter((m) => m.role !== 'system').length ?? 0;
  const sawFirstPrompt = request?.transcriptText.includes('lighthouse') ?? false;
  console.log(
    `        the model received ${turns} user/assistant messages; the first prompt among them: ${sawFirstPrompt ? 'yes' : 'NO'}`,
  );
  console.log(`        reply: ${second.subtype === 'success' ? second.result : second.subtype}`);

  const sessions = await listSessions({ sessionStore: backend.store });
  console.log(
    `\nThe store now holds ${sessions.length} session(s) for this directory; newest first:`,
  );
  for (const session of sessions.slice(0, 5)) {
    console.log(
      `  ${session.sessionId}  ${new Date(session.lastModified).toISOString()}  ${session.summary}`,
    );
  }
  console.log(
    `\nRun it again and the list grows: transcripts live in ${redactUrl(backendUrl)}, not in ~/.claude.`,
  );
} finally {
  await backend.close();
  await mock.close();
  await Promise.all(hosts.map((dir) => rm(dir, { recursive: true, force: true })));
}
