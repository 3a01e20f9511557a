import type { Command } from 'commander';
import { type ApiKeyRecord, createApiKey } from '../../core/api-keys.js';
import { SessionHubError } from '../../core/errors.js';
import { backendFlags, withOperatorHub } from '../context.js';
import { consoleOutput, show, table, when } from '../output.js';

const safe = (key: ApiKeyRecord) => {
  const { secretHash: _hidden, ...visible } = key;
  return visible;
};

/** `sessionhub keys create|list|revoke`: API keys, stored hashed in the backend. */
export function keysCommand(program: Command): void {
  const keys = program.command('keys').description('manage API keys for the HTTP service');
  backendFlags(
    keys
      .command('create')
      .description('create a key; its secret is printed once')
      .requiredOption('--tenant <tenant>', 'the tenant the key belongs to')
      .option('--owner <owner>', 'the owner a user key acts as')
      .option('--role <role>', 'user (own sessions) or admin (the whole tenant)', 'user')
      .option('--name <name>', 'a label for people', 'key')
      .option('--rate-limit <perMinute>', "requests per minute (default: the service's)"),
  ).action(async (options) => {
    const output = consoleOutput(Boolean(options.json));
    await withOperatorHub(options, async (hub) => {
      const rate = options.rateLimit === undefined ? null : Number(options.rateLimit);
      const { record, token } = createApiKey(
        {
          tenant: options.tenant,
          owner: options.owner,
          role: options.role,
          name: options.name,
          rateLimitPerMinute: rate,
        },
        hub.clock.now(),
      );
      await hub.backend.apiKeys.insert(record);
      show(output, { ...safe(record), token }, () =>
        [
          `created key ${record.id} (${record.role}, tenant ${record.tenant}${record.owner ? `, owner ${record.owner}` : ''})`,
          'its secret is shown once; store it now:',
          `  ${token}`,
        ].join('\n'),
      );
    });
  });
  backendFlags(
    keys
      .command('list')
      .description('list keys (never their secrets)')
      .option('--tenant <tenant>', "only this tenant's keys"),
  ).action(async (options) => {
    const output = consoleOutput(Boolean(options.json));
    await withOperatorHub({ ...options, tenant: undefined }, async (hub) => {
      const list = await hub.backend.apiKeys.list(options.tenant);
      show(output, list.map(safe), () =>
        table(
          ['ID', 'NAME', 'TENANT', 'OWNER', 'ROLE', 'CREATED', 'REVOKED'],
          list.map((k) => [
            k.id,
            k.name,
            k.tenant,
            k.owner ?? '-',
            k.role,
            when(k.createdAt),
            when(k.revokedAt),
          ]),
        ),
      );
    });
  });
  backendFlags(
    keys
      .command('revoke <id>')
      .description('revoke a key; services stop accepting it within seconds'),
  ).action(async (id: string, options) => {
    const output = consoleOutput(Boolean(options.json));
    await withOperatorHub(options, async (hub) => {
      const key = await hub.backend.apiKeys.revoke(id, hub.clock.now());
      if (!key) {
        throw new SessionHubError(
          'NOT_FOUND',
          `There is no API key ${id}; see \`sessionhub keys list\`.`,
          { id },
        );
      }
      show(output, safe(key), () => `revoked key ${key.id} as of ${when(key.revokedAt)}`);
    });
  });
}
