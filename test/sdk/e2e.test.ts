/**
 * Every backend under the real Agent SDK: query() turns through the bundled CLI against the mock
 * Anthropic API, with `options.sessionStore = backend.store`, then the SDK's store-backed session
 * helpers. Each "host" is a fresh CLAUDE_CONFIG_DIR, so what a second host knows it can only have
 * read from the store.
 *
 * Per backend, one two-turn session (host A, then resumed on host B) is made once and the tests
 * read it. Tests run in file order; those that change it come last: the fork test deletes the
 * forks it made, rename/tag leave metadata only, and the session is deleted at the very end.
 */
import { readdir } from 'node:fs/promises';
import {
  deleteSession,
  forkSession,
  getSessionInfo,
  getSessionMessages,
  importSessionToStore,
  listSessions,
  renameSession,
  type SessionMessage,
  tagSession,
} from '@anthropic-ai/claude-agent-sdk';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Backend } from '../../src/index.js';
import {
  type MockAnthropic,
  type MockMessagesRequest,
  startMockAnthropic,
} from '../../src/testing/index.js';
import { type BackendCase, backendCases } from '../helpers/backends.js';
import {
  messageText,
  projectKeyFor,
  runTurn,
  TempDirs,
  type TurnResult,
  withConfigDir,
} from '../helpers/sdk.js';

const TIMEOUT = 60_000;

let mock: MockAnthropic;

beforeAll(async () => {
  mock = await startMockAnthropic();
});
afterAll(async () => {
  await mock?.close();
});

/** The conversation request the CLI sent for `prompt` (prompts are unique per test). */
function requestFor(sessionId: string, prompt: string): MockMessagesRequest {
  const found = mock.conversationRequests.filter(
    (r) => r.sessionId === sessionId && r.lastUserText === prompt,
  );
  expect(found, `one conversation request for "${prompt}"`).toHaveLength(1);
  return found[0] as MockMessagesRequest;
}

/** The texts of a request's messages by role, without the CLI's injected reminders. */
function dialogue(request: MockMessagesRequest): string[] {
  return request.body.messages
    .filter((m) => m.role === 'user' || m.role === 'assistant')
    .map((m) => {
      const blocks =
        typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : m.content;
      const texts = blocks
        .filter((b) => b.type === 'text' && !String(b.text).startsWith('<system-reminder>'))
        .map((b) => String(b.text));
      return `${m.role}: ${texts.join(' ')}`;
    });
}

function texts(messages: SessionMessage[]): string[] {
  return messages.map((m) => `${m.type}: ${messageText(m.message)}`);
}

describe.each(backendCases())(
  '$name backend under the real SDK',
  { timeout: TIMEOUT },
  (backendCase: BackendCase) => {
    const name = backendCase.name;
    const dirs = new TempDirs();
    let backend: Backend;
    let cleanup: () => Promise<void>;
    let cwd: string;
    let projectKey: string;
    let hostA: string;
    let hostB: string;
    let first: TurnResult;
    let second: TurnResult;
    let hostBBefore: string[];
    const P1 = `[${name}] What is the capital of France?`;
    const P2 = `[${name}] And of Italy?`;
    const R1 = `Mock reply to: ${P1}`;
    const R2 = `Mock reply to: ${P2}`;

    beforeAll(async () => {
      const opened = await backendCase.open();
      backend = opened.backend;
      cleanup = opened.cleanup;
      cwd = await dirs.make(`e2e-${name}-cwd`);
      projectKey = projectKeyFor(cwd);
      hostA = await dirs.make(`e2e-${name}-host-a`);
      hostB = await dirs.make(`e2e-${name}-host-b`);
      const sessionStore = backend.store;
      first = await runTurn({ mock, prompt: P1, cwd, configDir: hostA, options: { sessionStore } });
      hostBBefore = await readdir(hostB);
      second = await runTurn({
        mock,
        prompt: P2,
        cwd,
        configDir: hostB,
        options: { sessionStore, resume: first.sessionId },
      });
    }, TIMEOUT);

    afterAll(async () => {
      await backend?.close();
      await cleanup?.();
      await dirs.cleanup();
    });

    test('the first turn is mirrored to the store under the sanitized cwd', async () => {
      expect(first.text).toBe(R1);
      const entries = await backend.store.load({ projectKey, sessionId: first.sessionId });
      expect(entries).not.toBeNull();
      const users = (entries ?? [])
        .filter((e) => e.type === 'user')
        .map((e) => messageText(e.message));
      const assistants = (entries ?? []).filter((e) => e.type === 'assistant');
      expect(users).toContain(P1);
      expect(assistants.map((e) => messageText(e.message))).toContain(R1);
      expect(await backend.store.listSessions(projectKey)).toContainEqual({
        sessionId: first.sessionId,
        mtime: expect.any(Number),
      });
    });

    test('a second host with an empty disk resumes from the store and the model gets the whole history', async () => {
      expect(hostBBefore).toEqual([]);
      expect(second.sessionId).toBe(first.sessionId);
      expect(second.text).toBe(R2);
      const request = requestFor(first.sessionId, P2);
      expect(dialogue(request)).toEqual([`user: ${P1}`, `assistant: ${R1}`, `user: ${P2}`]);
      // The resumed turn went through the store too: the second prompt and reply are mirrored.
      const all = JSON.stringify(
        await backend.store.load({ projectKey, sessionId: first.sessionId }),
      );
      expect(all).toContain(P2);
      expect(all).toContain(R2);
    });

    test('listSessions and getSessionInfo read the session from the store', async () => {
      const sessionStore = backend.store;
      const listed = await listSessions({ dir: cwd, sessionStore });
      expect(listed.map((s) => s.sessionId)).toEqual([first.sessionId]);
      const info = await getSessionInfo(first.sessionId, { dir: cwd, sessionStore });
      expect(info).toMatchObject({
        sessionId: first.sessionId,
        firstPrompt: P1,
        cwd,
        // No AI title without non-essential traffic, so the summary is the last prompt.
        summary: P2,
      });
      expect(info?.createdAt).toBeLessThanOrEqual(info?.lastModified ?? 0);
      expect(listed[0]).toMatchObject({ sessionId: first.sessionId, firstPrompt: P1, summary: P2 });
      expect(
        await getSessionInfo('00000000-0000-4000-8000-000000000000', { dir: cwd, sessionStore }),
      ).toBeUndefined();
    });

    test('getSessionMessages returns the conversation in order, with limit and offset', async () => {
      const sessionStore = backend.store;
      const messages = await getSessionMessages(first.sessionId, { dir: cwd, sessionStore });
      expect(texts(messages)).toEqual([
        `user: ${P1}`,
        `assistant: ${R1}`,
        `user: ${P2}`,
        `assistant: ${R2}`,
      ]);
      expect(messages.every((m) => m.session_id === first.sessionId)).toBe(true);
      const page = await getSessionMessages(first.sessionId, {
        dir: cwd,
        sessionStore,
        limit: 2,
        offset: 2,
      });
      expect(page.map((m) => m.uuid)).toEqual(messages.slice(2).map((m) => m.uuid));
    });

    test('forkSession up to a message copies that prefix under a new id, and the fork resumes', async () => {
      const sessionStore = backend.store;
      const original = await getSessionMessages(first.sessionId, { dir: cwd, sessionStore });
      const cut = original[1] as SessionMessage;
      const title = `Branch of ${name}`;
      const fork = await forkSession(first.sessionId, {
        dir: cwd,
        sessionStore,
        upToMessageId: cut.uuid,
        title,
      });
      expect(fork.sessionId).not.toBe(first.sessionId);

      const forked = await getSessionMessages(fork.sessionId, { dir: cwd, sessionStore });
      expect(texts(forked)).toEqual([`user: ${P1}`, `assistant: ${R1}`]);
      expect(forked.every((m) => m.session_id === fork.sessionId)).toBe(true);
      const originalIds = new Set(original.map((m) => m.uuid));
      expect(forked.some((m) => originalIds.has(m.uuid))).toBe(false);
      expect(await getSessionInfo(fork.sessionId, { dir: cwd, sessionStore })).toMatchObject({
        customTitle: title,
        summary: title,
      });

      const whole = await forkSession(first.sessionId, { dir: cwd, sessionStore });
      expect(texts(await getSessionMessages(whole.sessionId, { dir: cwd, sessionStore }))).toEqual(
        texts(original),
      );

      // A third host continues the branch: the model sees the prefix, not the turn after the cut.
      const P3 = `[${name}] And of Spain, on the branch?`;
      const hostC = await dirs.make(`e2e-${name}-host-c`);
      const third = await runTurn({
        mock,
        prompt: P3,
        cwd,
        configDir: hostC,
        options: { sessionStore, resume: fork.sessionId },
      });
      expect(third.sessionId).toBe(fork.sessionId);
      expect(dialogue(requestFor(fork.sessionId, P3))).toEqual([
        `user: ${P1}`,
        `assistant: ${R1}`,
        `user: ${P3}`,
      ]);

      const ids = (await listSessions({ dir: cwd, sessionStore })).map((s) => s.sessionId);
      expect(ids.sort()).toEqual([first.sessionId, fork.sessionId, whole.sessionId].sort());

      await deleteSession(whole.sessionId, { dir: cwd, sessionStore });
      await deleteSession(fork.sessionId, { dir: cwd, sessionStore });
      expect(await backend.store.load({ projectKey, sessionId: fork.sessionId })).toBeNull();
      expect(await getSessionInfo(fork.sessionId, { dir: cwd, sessionStore })).toBeUndefined();
      expect((await listSessions({ dir: cwd, sessionStore })).map((s) => s.sessionId)).toEqual([
        first.sessionId,
      ]);
    });

    test('renameSession and tagSession show in getSessionInfo and listSessions', async () => {
      const sessionStore = backend.store;
      const title = `Capitals (${name})`;
      await renameSession(first.sessionId, title, { dir: cwd, sessionStore });
      await tagSession(first.sessionId, 'geography', { dir: cwd, sessionStore });
      expect(await getSessionInfo(first.sessionId, { dir: cwd, sessionStore })).toMatchObject({
        customTitle: title,
        summary: title,
        tag: 'geography',
        firstPrompt: P1,
      });
      await renameSession(first.sessionId, `${title}, renamed`, { dir: cwd, sessionStore });
      await tagSession(first.sessionId, null, { dir: cwd, sessionStore });
      const [listed] = await listSessions({ dir: cwd, sessionStore });
      expect(listed).toMatchObject({
        sessionId: first.sessionId,
        customTitle: `${title}, renamed`,
      });
      expect(listed?.tag).toBeUndefined();
      // Metadata entries do not disturb the conversation.
      expect(
        texts(await getSessionMessages(first.sessionId, { dir: cwd, sessionStore })),
      ).toHaveLength(4);
    });

    test('importSessionToStore copies a disk-only session into the store, and another host resumes it', async () => {
      const sessionStore = backend.store;
      const P4 = `[${name}] A question asked without a store`;
      const P5 = `[${name}] A follow-up after the import`;
      const hostD = await dirs.make(`e2e-${name}-host-d`);
      const local = await runTurn({ mock, prompt: P4, cwd, configDir: hostD });
      expect(await backend.store.load({ projectKey, sessionId: local.sessionId })).toBeNull();

      await withConfigDir(hostD, () =>
        importSessionToStore(local.sessionId, sessionStore, { dir: cwd }),
      );
      const imported = await getSessionMessages(local.sessionId, { dir: cwd, sessionStore });
      expect(texts(imported)).toEqual([`user: ${P4}`, `assistant: Mock reply to: ${P4}`]);
      expect((await listSessions({ dir: cwd, sessionStore })).map((s) => s.sessionId)).toContain(
        local.sessionId,
      );

      // A second import replays the same uuids: the store must keep one copy of each.
      const key = { projectKey, sessionId: local.sessionId };
      const uuids = async () =>
        ((await backend.store.load(key)) ?? []).flatMap((e) => (e.uuid ? [e.uuid] : []));
      const before = await uuids();
      await withConfigDir(hostD, () =>
        importSessionToStore(local.sessionId, sessionStore, { dir: cwd }),
      );
      expect(await uuids()).toEqual(before);
      expect(new Set(before).size).toBe(before.length);
      expect(await getSessionMessages(local.sessionId, { dir: cwd, sessionStore })).toHaveLength(2);

      const hostE = await dirs.make(`e2e-${name}-host-e`);
      const resumed = await runTurn({
        mock,
        prompt: P5,
        cwd,
        configDir: hostE,
        options: { sessionStore, resume: local.sessionId },
      });
      expect(resumed.text).toBe(`Mock reply to: ${P5}`);
      expect(dialogue(requestFor(local.sessionId, P5))).toEqual([
        `user: ${P4}`,
        `assistant: Mock reply to: ${P4}`,
        `user: ${P5}`,
      ]);
    });

    test('deleteSession removes the session from the store', async () => {
      const sessionStore = backend.store;
      await deleteSession(first.sessionId, { dir: cwd, sessionStore });
      expect(await backend.store.load({ projectKey, sessionId: first.sessionId })).toBeNull();
      expect(await getSessionInfo(first.sessionId, { dir: cwd, sessionStore })).toBeUndefined();
      expect(
        (await listSessions({ dir: cwd, sessionStore })).map((s) => s.sessionId),
      ).not.toContain(first.sessionId);
    });
  },
);
