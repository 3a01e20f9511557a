import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { createFileBackend } from '../../src/backends/file/index.js';
import { LEASES_FOLDER } from '../../src/backends/file/lease-manager.js';
import { encodeName } from '../../src/backends/file/names.js';
import { ManualClock } from '../../src/core/clock.js';
import { isSessionHubError } from '../../src/core/errors.js';
import type { Lease } from '../../src/core/lease.js';
import { describeLeaseConformance } from '../../src/testing/index.js';

describeLeaseConformance('file leases', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'sessionhub-file-leases-'));
  const backends: Backend[] = [];
  return {
    // A backend of its own per manager; within this process they share the folder's leases.
    async manager(clock) {
      const backend = await createFileBackend({ dir, clock });
      backends.push(backend);
      return backend.leases;
    },
    async close() {
      for (const backend of backends) await backend.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('file leases beyond the contract', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sessionhub-file-leases-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('the fence continues after every backend closes and the folder is reopened', async () => {
    const clock = new ManualClock();
    const first = await createFileBackend({ dir, clock });
    const a = (await first.leases.acquire('s1', { holder: 'a', ttlMs: 1000 })) as Lease;
    await first.leases.release(a);
    const b = (await first.leases.acquire('s1', { holder: 'b', ttlMs: 1000 })) as Lease;
    expect(b.fence).toBe(2);
    await first.leases.acquire('s2', { holder: 'b', ttlMs: 1000 });
    await first.close();

    const second = await createFileBackend({ dir, clock });
    try {
      // Holders lived in the closed process's memory; only the fences were kept.
      expect(await second.leases.current('s1')).toBeNull();
      expect(await second.leases.acquire('s1', { holder: 'c', ttlMs: 1000 })).toMatchObject({
        fence: 3,
      });
      expect(await second.leases.acquire('s2', { holder: 'c', ttlMs: 1000 })).toMatchObject({
        fence: 2,
      });
      expect(await second.leases.acquire('s3', { holder: 'c', ttlMs: 1000 })).toMatchObject({
        fence: 1,
      });
    } finally {
      await second.close();
    }
  });

  test('a fence is on disk before the lease is handed out, and no temp file is left', async () => {
    const backend = await createFileBackend({ dir, clock: new ManualClock() });
    try {
      const resource = 'a/../b';
      const lease = (await backend.leases.acquire(resource, { holder: 'a', ttlMs: 1000 })) as Lease;
      const folder = path.join(dir, LEASES_FOLDER);
      const file = path.join(folder, `${encodeName(resource)}.json`);
      expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ resource, fence: lease.fence });
      expect(await readdir(folder)).toEqual([`${encodeName(resource)}.json`]);
    } finally {
      await backend.close();
    }
  });

  test('no project folder can meet the leases folder', async () => {
    const backend = await createFileBackend({ dir, clock: new ManualClock() });
    try {
      await backend.leases.acquire('s', { holder: 'a', ttlMs: 1000 });
      const key = { projectKey: LEASES_FOLDER, sessionId: 's' };
      await backend.store.append(key, [{ type: 'user', uuid: 'u1' }]);
      expect(encodeName(LEASES_FOLDER)).not.toBe(LEASES_FOLDER);
      expect((await readdir(dir)).sort()).toEqual(
        [LEASES_FOLDER, encodeName(LEASES_FOLDER)].sort(),
      );
      expect(await backend.store.load(key)).toEqual([{ type: 'user', uuid: 'u1' }]);
      expect(await backend.store.listSessions(LEASES_FOLDER)).toHaveLength(1);
    } finally {
      await backend.close();
    }
  });

  test('one folder reached through a symlink shares its leases', async () => {
    const clock = new ManualClock();
    const real = path.join(dir, 'real');
    await mkdir(real);
    await symlink(real, path.join(dir, 'link'), 'dir');
    const one = await createFileBackend({ dir: real, clock });
    const two = await createFileBackend({ dir: path.join(dir, 'link'), clock });
    try {
      expect(await one.leases.acquire('s', { holder: 'a', ttlMs: 1000 })).not.toBeNull();
      expect(await two.leases.acquire('s', { holder: 'b', ttlMs: 1000 })).toBeNull();
    } finally {
      await one.close();
      await two.close();
    }
  });

  test('an unreadable fence file is refused, not guessed', async () => {
    const backend = await createFileBackend({ dir, clock: new ManualClock() });
    try {
      await backend.leases.acquire('s', { holder: 'a', ttlMs: 1000 });
    } finally {
      await backend.close();
    }
    await writeFile(path.join(dir, LEASES_FOLDER, `${encodeName('s')}.json`), '');
    const reopened = await createFileBackend({ dir, clock: new ManualClock() });
    try {
      const error = await reopened.leases
        .acquire('s', { holder: 'a', ttlMs: 1000 })
        .catch((e: unknown) => e);
      expect(isSessionHubError(error, 'BACKEND_UNAVAILABLE')).toBe(true);
      expect((error as Error).message).toContain(encodeName('s'));
    } finally {
      await reopened.close();
    }
    const closed = await reopened.leases.current('s').catch((e: unknown) => e);
    expect(isSessionHubError(closed, 'CLOSED')).toBe(true);
  });
});
