import type { Command } from 'commander';
import { openBackend } from '../../backends/open.js';
import { loadConfig } from '../../config/config.js';
import { redactUrl } from '../../core/backend-url.js';
import { startMockAnthropic } from '../../testing/mock-anthropic/index.js';
import { backendFlags, withOperatorHub } from '../context.js';
import { consoleOutput, show, table, usd } from '../output.js';

/** `sessionhub sweep`, `stats`, `migrate` and `mock-anthropic`. */
export function operationsCommands(program: Command): void {
  backendFlags(
    program
      .command('sweep')
      .description('expire sessions past their deadline and purge those past retention, now'),
  ).action(async (options) => {
    const output = consoleOutput(Boolean(options.json));
    await withOperatorHub(options, async (hub) => {
      const result = await hub.sweep();
      show(output, result, () =>
        result.ran
          ? `expired ${result.expired}, purged ${result.purged}`
          : 'another process is sweeping this backend right now; nothing done',
      );
    });
  });

  backendFlags(
    program
      .command('stats')
      .description("a tenant's sessions by status and its usage per owner and day")
      .option('--tenant <tenant>', 'the tenant', 'default')
      .option('--from-day <day>', 'first UTC day, YYYY-MM-DD (default: 30 days ago)')
      .option('--to-day <day>', 'last UTC day (default: today)'),
  ).action(async (options) => {
    const output = consoleOutput(Boolean(options.json));
    await withOperatorHub(options, async (hub, admin) => {
      const stats = await hub.stats(admin, {
        ...(options.fromDay ? { fromDay: options.fromDay } : {}),
        ...(options.toDay ? { toDay: options.toDay } : {}),
      });
      show(output, stats, () =>
        [
          `sessions: ${stats.sessions.total} (${Object.entries(stats.sessions.byStatus)
            .map(([status, n]) => `${n} ${status}`)
            .join(', ')})`,
          `usage ${stats.usage.fromDay} to ${stats.usage.toDay}: ${stats.usage.total.turns} turns, ${usd(stats.usage.total.costUsd)}`,
          table(
            ['OWNER', 'TURNS', 'COST'],
            stats.usage.byOwner.map((o) => [o.owner, String(o.turns), usd(o.costUsd)]),
          ),
        ].join('\n'),
      );
    });
  });

  backendFlags(
    program
      .command('migrate')
      .description('bring the backend schema up to date (serve does this too)'),
  ).action(async (options) => {
    const output = consoleOutput(Boolean(options.json));
    const config = loadConfig({ flags: { db: options.db }, file: options.config });
    const backend = await openBackend(config.db);
    await backend.close();
    show(
      output,
      { migrated: redactUrl(config.db) },
      () => `schema up to date: ${redactUrl(config.db)}`,
    );
  });

  program
    .command('mock-anthropic')
    .description('run the built-in mock Anthropic Messages API (simulated replies) until stopped')
    .option('--port <port>', 'port to listen on (default: a free one)', '0')
    .action(async (options) => {
      const mock = await startMockAnthropic({ port: Number(options.port) });
      console.log(`mock Anthropic API on ${mock.url} (replies are simulated)`);
      console.log(`  point the SDK at it: ANTHROPIC_BASE_URL=${mock.url} ANTHROPIC_API_KEY=mock`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await mock.close();
    });
}
