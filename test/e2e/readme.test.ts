/**
 * The README's first steps, as a new user takes them: its "Two commands" are the ones this test
 * knows, `npm start` brings up the service on SQLite with simulated replies and prints a key and
 * a curl command, and that curl command, pasted into a shell, gets an answer.
 */
import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';
import { assertBuilt } from '../helpers/cli.js';
import { TempDirs } from '../helpers/sdk.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dirs = new TempDirs();
afterAll(() => dirs.cleanup());

describe('the README', () => {
  test('its two commands are install-and-start and test', async () => {
    const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
    const section = readme.split('## Two commands')[1]?.split('\n## ')[0] ?? '';
    const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
    const commands = block
      .split('\n')
      .map((line) => line.replace(/#.*$/, '').trim())
      .filter(Boolean);
    expect(commands).toEqual(['npm install && npm start', 'npm test']);
    const scripts = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')).scripts;
    // `npm install` builds (prepare), so `npm start` runs the built service directly.
    expect(scripts.prepare).toBe('npm run build');
    expect(scripts.start).toMatch(/dist\/cli\/main\.js serve --mock-model/);
  });

  test('`npm start` serves on SQLite with simulated replies, and its curl example answers', async () => {
    assertBuilt();
    const place = await dirs.make('readme');
    // Where a new user's checkout would put the database and data, moved to a temporary place;
    // port 0 so the test never collides with a service already on 8787.
    const child = spawn('npm', ['start', '--silent'], {
      cwd: ROOT,
      detached: true,
      env: {
        ...process.env,
        SESSIONHUB_PORT: '0',
        SESSIONHUB_DB: `sqlite:${path.join(place, 'hub.db')}`,
        SESSIONHUB_DATA_DIR: path.join(place, 'data'),
        SESSIONHUB_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // 'close' comes once every process holding the output pipes (npm and the service) is gone.
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    let printed = '';
    const curl = await new Promise<string>((resolve, reject) => {
      const look = (chunk: Buffer) => {
        printed += chunk;
        const line = /^\s*try:\s+(curl .*)$/m.exec(printed)?.[1];
        if (line) resolve(line);
      };
      child.stdout.on('data', look);
      child.stderr.on('data', look);
      void exited.then((code) => reject(new Error(`npm start exited (${code}):\n${printed}`)));
    });
    try {
      expect(printed).toMatch(/backend: sqlite:/);
      expect(printed).toMatch(/replies are SIMULATED/);
      const { stdout } = await promisify(execFile)('sh', ['-c', curl]);
      expect(JSON.parse(stdout)).toMatchObject({
        status: 'completed',
        text: 'Mock reply to: Hello',
        session: { owner: 'dev', tenant: 'default' },
      });
    } finally {
      // Ctrl-C in a terminal signals the whole group: npm and the service under it.
      if (child.pid) process.kill(-child.pid, 'SIGINT');
    }
    await exited;
    expect(printed).toMatch(/SIGINT: shutting down/);
  }, 120_000);
});
