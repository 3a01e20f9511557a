/**
 * Subagent transcripts under the real SDK, on every backend: a turn that delegates to a subagent
 * writes a second transcript under a subpath; another host's resume materialises it from the
 * store (through listSubkeys), the SDK's subagent helpers read it, and deleting the session
 * removes it too.
 */
import { deleteSession, getSubagentMessages, listSubagents } from '@anthropic-ai/claude-agent-sdk';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type MockAnthropic, RecordingStore, startMockAnthropic } from '../../src/testing/index.js';
import { type BackendCase, backendCases } from '../helpers/backends.js';
import { messageText, projectKeyFor, runTurn, TempDirs } from '../helpers/sdk.js';

const TIMEOUT = 60_000;
let mock: MockAnthropic;

beforeAll(async () => {
  mock = await startMockAnthropic();
});
afterAll(async () => {
  await mock?.close();
});

describe.each(backendCases())(
  '$name backend: subagent transcripts',
  { timeout: TIMEOUT },
  (backendCase: BackendCase) => {
    const dirs = new TempDirs();

    test('are stored under a subpath, resumed on another host, read by the SDK and deleted with the session', async () => {
      const { backend, cleanup } = await backendCase.open();
      try {
        const cwd = await dirs.make('sub-cwd');
        const projectKey = projectKeyFor(cwd);
        const subPrompt = `[${backendCase.name}] Say hi from the subagent`;
        mock.enqueue({
          content: [
            {
              type: 'tool_use',
              name: 'Task',
              input: { description: 'greet', prompt: subPrompt, subagent_type: 'general-purpose' },
            },
          ],
        });
        const first = await runTurn({
          mock,
          prompt: `[${backendCase.name}] Delegate a greeting`,
          cwd,
          configDir: await dirs.make('sub-host-a'),
          options: { sessionStore: backend.store, allowedTools: ['Task'] },
        });
        const key = { projectKey, sessionId: first.sessionId };

        const subkeys = await backend.store.listSubkeys(key);
        expect(subkeys).toHaveLength(1);
        const subpath = subkeys[0] as string;
        expect(subpath).toMatch(/^subagents\/agent-/);
        const subEntries = (await backend.store.load({ ...key, subpath })) ?? [];
        expect(subEntries.map((e) => messageText(e.message))).toContain(subPrompt);
        // The subagent's work does not leak into the main transcript's listing.
        expect((await backend.store.listSessions(projectKey)).map((s) => s.sessionId)).toEqual([
          first.sessionId,
        ]);

        const agentId = subpath.slice('subagents/agent-'.length);
        const sessionStore = backend.store;
        expect(await listSubagents(first.sessionId, { dir: cwd, sessionStore })).toEqual([agentId]);
        const messages = await getSubagentMessages(first.sessionId, agentId, {
          dir: cwd,
          sessionStore,
        });
        expect(messages.map((m) => messageText(m.message))).toContain(subPrompt);

        // Host B starts with nothing on disk; its resume asks the store for the subagent
        // transcripts too (listSubkeys, then a load of each), through the same store.
        const recording = new RecordingStore(sessionStore);
        await runTurn({
          mock,
          prompt: `[${backendCase.name}] Thanks`,
          cwd,
          configDir: await dirs.make('sub-host-b'),
          options: { sessionStore: recording, resume: first.sessionId },
        });
        const asked = recording.calls.map((call) =>
          call.method === 'load' ? `load ${call.key.subpath ?? 'main'}` : call.method,
        );
        expect(asked).toEqual(
          expect.arrayContaining(['load main', 'listSubkeys', `load ${subpath}`]),
        );

        await deleteSession(first.sessionId, { dir: cwd, sessionStore });
        expect(await backend.store.load(key)).toBeNull();
        expect(await backend.store.load({ ...key, subpath })).toBeNull();
        expect(await backend.store.listSubkeys(key)).toEqual([]);
      } finally {
        await backend.close();
        await cleanup();
        await dirs.cleanup();
      }
    });
  },
);
