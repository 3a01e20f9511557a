/**
 * The built `sessionhub` command (dist/cli/main.js), run as a user would: `run()` for a command
 * that ends, `serve()` for the service, which resolves once it listens.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../dist/cli/main.js',
);

export function assertBuilt(): void {
  if (!existsSync(CLI)) {
    throw new Error(`${CLI} is missing: run \`npm run build\` first (\`npm test\` does).`);
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one command to its end. */
export function run(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export interface ServeProcess {
  url: string;
  child: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  /** Resolves with the exit code once it has exited. */
  exited: Promise<number | null>;
}

/** Kills what is still running of `services` (emptying the list) and waits for each to exit. */
export async function stopServices(services: ServeProcess[]): Promise<void> {
  for (const service of services.splice(0)) {
    if (service.child.exitCode === null) service.child.kill('SIGKILL');
    await service.exited;
  }
}

/** Starts `sessionhub serve ...args` and resolves once it prints where it listens. */
export function serve(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; waitFor?: RegExp } = {},
): Promise<ServeProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let printed = '';
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      printed += chunk;
      // The lines after the address (backend, model, a key) are written in the same tick.
      const match = /sessionhub listening on (\S+)/.exec(printed);
      const ready = /\n {2}model: .*\n/.test(printed) && (options.waitFor?.test(printed) ?? true);
      if (match && ready) {
        resolve({ url: match[1] as string, child, output: () => printed, exited });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk: Buffer) => {
      printed += chunk;
    });
    void exited.then((code) =>
      reject(new Error(`serve exited with ${code} before listening:\n${printed}`)),
    );
  });
}
