import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { DEFAULT_CONFIG, loadConfig } from '../../src/config/config.js';
import type { SessionHubError } from '../../src/core/errors.js';
import { TempDirs } from '../helpers/sdk.js';
import { thrown } from '../helpers/thrown.js';

const dirs = new TempDirs();
afterAll(() => dirs.cleanup());

async function configFile(value: unknown): Promise<string> {
  const file = path.join(await dirs.make('config'), 'sessionhub.json');
  await writeFile(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
}

describe('configuration', () => {
  test('defaults, then the file, then the environment, then flags', async () => {
    expect(loadConfig({ env: {} })).toEqual(DEFAULT_CONFIG);
    const file = await configFile({ port: 9000, db: 'memory:', callerOptions: ['model'] });
    expect(loadConfig({ env: {}, file })).toMatchObject({
      port: 9000,
      db: 'memory:',
      callerOptions: ['model'],
      host: DEFAULT_CONFIG.host,
    });
    const env = { SESSIONHUB_PORT: '9100', SESSIONHUB_CALLER_OPTIONS: 'model, maxTurns ,' };
    expect(loadConfig({ env, file })).toMatchObject({
      port: 9100,
      db: 'memory:',
      callerOptions: ['model', 'maxTurns'],
    });
    expect(loadConfig({ env, file, flags: { port: '9200', mockModel: true } })).toMatchObject({
      port: 9200,
      mockModel: true,
    });
    // SESSIONHUB_CONFIG names the file when no --config is given.
    expect(loadConfig({ env: { SESSIONHUB_CONFIG: file } }).port).toBe(9000);
    expect(loadConfig({ env: { SESSIONHUB_MOCK_MODEL: 'yes' } }).mockModel).toBe(true);
    expect(loadConfig({ env: { ANTHROPIC_API_KEY: 'sk-x' } }).anthropicApiKey).toBe('sk-x');
  });

  test('every bad value is reported at once, with where it came from', async () => {
    const file = await configFile({ port: 70_000, colour: 'red' });
    const error = thrown(() =>
      loadConfig({
        env: { SESSIONHUB_WARM_SESSIONS: 'lots', SESSIONHUB_MOCK_MODEL: 'perhaps' },
        flags: { logLevel: 'loud' },
        file,
      }),
    ) as SessionHubError;
    expect(error.code).toBe('INVALID_OPTION');
    const problems = error.details.problems as string[];
    expect(problems).toEqual(
      expect.arrayContaining([
        'SESSIONHUB_WARM_SESSIONS=lots: must be a whole number',
        'SESSIONHUB_MOCK_MODEL=perhaps: must be true or false (or 1/0, yes/no, on/off)',
        expect.stringMatching(/^--log-level \("loud"\): /),
        expect.stringMatching(/unknown setting\(s\) colour/),
      ]),
    );
    expect(error.message).toContain('The configuration has problems');
  });

  test('a file that cannot be read or is not one JSON object says so', async () => {
    const missing = thrown(() => loadConfig({ env: {}, file: '/nowhere/sessionhub.json' }));
    expect((missing as SessionHubError).message).toMatch(/Cannot read the configuration file/);
    const broken = await configFile('{"port": ');
    expect((thrown(() => loadConfig({ env: {}, file: broken })) as Error).message).toMatch(
      /not valid JSON/,
    );
    const list = await configFile([1, 2]);
    expect((thrown(() => loadConfig({ env: {}, file: list })) as Error).message).toMatch(
      /one JSON object/,
    );
  });
});
