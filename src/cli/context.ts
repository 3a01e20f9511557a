import type { Command } from 'commander';
import { openBackend } from '../backends/open.js';
import { loadConfig, type ServiceConfig } from '../config/config.js';
import type { Identity } from '../core/identity.js';
import { createHub, type SessionHub } from '../hub/hub.js';

/** Flags every command that opens the backend takes. */
export interface BackendFlags {
  db?: string;
  config?: string;
  tenant?: string;
}

/**
 * The flags of every command that opens the backend: --db, --config and --json, and --tenant for
 * the commands that act in one tenant as its admin.
 */
export function backendFlags(command: Command, options: { tenant?: boolean } = {}): Command {
  if (options.tenant) {
    command.option('--tenant <tenant>', 'the tenant to act in as its admin', 'default');
  }
  return command
    .option('--db <url>', 'backend URL (SESSIONHUB_DB)')
    .option('--config <file>', 'configuration file (SESSIONHUB_CONFIG)')
    .option('--json', 'print JSON');
}

/**
 * The operator's hub: the configured backend, opened directly (not through a running service),
 * acting as the admin of `--tenant` (default "default"). No runner and no sweeping in the
 * background: commands do one thing and close it.
 */
export async function withOperatorHub<T>(
  flags: BackendFlags,
  task: (hub: SessionHub, admin: Identity, config: ServiceConfig) => Promise<T>,
): Promise<T> {
  const config = loadConfig({ flags: { db: flags.db }, file: flags.config });
  const backend = await openBackend(config.db);
  const hub = createHub({ backend, ownsBackend: true });
  try {
    return await task(hub, { tenant: flags.tenant ?? 'default', admin: true }, config);
  } finally {
    await hub.close();
  }
}
