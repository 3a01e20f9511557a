import type { Command } from 'commander';
import { CONFIG_SETTINGS, loadConfig, type ServiceConfig } from '../../config/config.js';
import { startService } from '../../server/service.js';

/** `sessionhub serve`: the HTTP service, configured by flags, environment and a file. */
export function serveCommand(program: Command): void {
  const command = program
    .command('serve')
    .description('run the HTTP service (REST + SSE) on the configured backend')
    .option('--config <file>', 'a JSON configuration file (also SESSIONHUB_CONFIG)');
  for (const setting of CONFIG_SETTINGS) {
    const boolean = ['mockModel', 'bootstrapKey'].includes(setting.key);
    command.option(
      boolean ? setting.flag : `${setting.flag} <value>`,
      `(${setting.env})${boolean ? '' : ''}`,
    );
  }
  command.action(async (options: Record<string, unknown>) => {
    const flags: Partial<Record<keyof ServiceConfig, unknown>> = {};
    for (const setting of CONFIG_SETTINGS) {
      if (options[setting.key] !== undefined) {
        flags[setting.key as keyof ServiceConfig] = options[setting.key];
      }
    }
    const config = loadConfig({ flags, file: options.config as string | undefined });
    const service = await startService(config);
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        console.log(`${signal}: shutting down (running turns get ${config.shutdownGraceMs} ms)`);
        service.shutdown().then(resolve, (error: unknown) => {
          console.error(`shutdown failed: ${(error as Error).message}`);
          resolve();
        });
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
  });
}
