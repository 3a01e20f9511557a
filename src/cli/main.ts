#!/usr/bin/env node
/**
 * The `sessionhub` command: the HTTP service and the operator's tools, on the same library.
 * Exit codes are listed in output.ts.
 */
import { Command, CommanderError } from 'commander';
import { importCommand } from './commands/import.js';
import { keysCommand } from './commands/keys.js';
import { operationsCommands } from './commands/operations.js';
import { serveCommand } from './commands/serve.js';
import { sessionsCommand } from './commands/sessions.js';
import { consoleOutput, EXIT, exitCodeOf, reportError } from './output.js';

export function buildProgram(): Command {
  const program = new Command('sessionhub')
    .description('Durable, multi-user sessions for agents built on the Claude Agent SDK')
    .showHelpAfterError()
    .exitOverride();
  serveCommand(program);
  importCommand(sessionsCommand(program));
  keysCommand(program);
  operationsCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    // A command that finished with a partial failure (an import) set its own code.
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are not failures; everything else commander refuses is bad usage.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    reportError(consoleOutput(argv.includes('--json')), error);
    return exitCodeOf(error);
  }
}

process.exitCode = await main(process.argv.slice(2));
