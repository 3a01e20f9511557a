import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { SessionRecord } from '../../core/session-record.js';
import { backendFlags, withOperatorHub } from '../context.js';
import { consoleOutput, show, table, usd, when } from '../output.js';

const backendOptions = (command: Command) => backendFlags(command, { tenant: true });

function describe(session: SessionRecord): string {
  return [
    `id:          ${session.id}`,
    `owner:       ${session.owner} (tenant ${session.tenant})`,
    `title:       ${session.title ?? '-'}`,
    `status:      ${session.status}`,
    `tags:        ${session.tags.join(', ') || '-'}`,
    `created:     ${when(session.createdAt)}`,
    `last active: ${when(session.lastActiveAt)}`,
    `expires:     ${when(session.expiresAt)}`,
    `purge:       ${when(session.purgeAt)}`,
    `forked from: ${session.forkedFrom ? session.forkedFrom.sessionId : '-'}`,
    `turns:       ${session.usage.turns}`,
    `cost:        ${usd(session.usage.costUsd)}`,
    `tokens:      ${session.usage.tokens.inputTokens} in, ${session.usage.tokens.outputTokens} out`,
  ].join('\n');
}

/** `sessionhub sessions ls|show|rm|fork|export`, straight on the backend. */
export function sessionsCommand(program: Command): Command {
  const sessions = program.command('sessions').description('list and manage sessions');

  backendOptions(sessions.command('ls').description('list sessions, newest first'))
    .option('--owner <owner>', "only this owner's")
    .option('--status <statuses>', 'comma-separated: active, archived, expired, failed')
    .option('--tag <tag>', 'only sessions with this tag')
    .option('--limit <n>', 'sessions per page (1-200)', '50')
    .option('--cursor <cursor>', 'continue after a previous page')
    .action(async (options) => {
      const output = consoleOutput(Boolean(options.json));
      await withOperatorHub(options, async (hub, admin) => {
        const page = await hub.list(admin, {
          ...(options.owner ? { owner: options.owner } : {}),
          ...(options.status ? { status: String(options.status).split(',') } : {}),
          ...(options.tag ? { tag: options.tag } : {}),
          ...(options.cursor ? { cursor: options.cursor } : {}),
          limit: Number(options.limit),
        });
        show(output, page, () => {
          const rows = page.sessions.map((s) => [
            s.id,
            s.owner,
            s.status,
            String(s.usage.turns),
            usd(s.usage.costUsd),
            when(s.lastActiveAt),
            s.title ?? '',
          ]);
          const text = table(
            ['ID', 'OWNER', 'STATUS', 'TURNS', 'COST', 'LAST ACTIVE', 'TITLE'],
            rows,
          );
          return page.nextCursor ? `${text}\nmore: --cursor ${page.nextCursor}` : text;
        });
      });
    });

  backendOptions(sessions.command('show <id>').description('one session in full')).action(
    async (id: string, options) => {
      const output = consoleOutput(Boolean(options.json));
      await withOperatorHub(options, async (hub, admin) => {
        const session = await hub.get(admin, id);
        show(output, session, () => describe(session));
      });
    },
  );

  backendOptions(
    sessions.command('rm <id>').description('delete a session and its transcripts'),
  ).action(async (id: string, options) => {
    const output = consoleOutput(Boolean(options.json));
    await withOperatorHub(options, async (hub, admin) => {
      await hub.delete(admin, id);
      show(output, { deleted: id }, () => `deleted ${id}`);
    });
  });

  backendOptions(sessions.command('fork <id>').description('fork a session'))
    .option('--at <messageUuid>', 'cut after this message (default: the whole transcript)')
    .option('--title <title>', "the fork's title")
    .action(async (id: string, options) => {
      const output = consoleOutput(Boolean(options.json));
      await withOperatorHub(options, async (hub, admin) => {
        const fork = await hub.fork(admin, id, {
          ...(options.at ? { atMessageUuid: options.at } : {}),
          ...(options.title ? { title: options.title } : {}),
        });
        show(output, fork, () => `forked ${id} as ${fork.id}`);
      });
    });

  backendOptions(
    sessions
      .command('export <id>')
      .description('write the transcript as JSONL (the SDK file format) to stdout or a file'),
  )
    .option('--out <file>', 'write to this file instead of stdout')
    .action(async (id: string, options) => {
      await withOperatorHub(options, async (hub, admin) => {
        const entries = await hub.transcript(admin, id);
        const text = entries.map((entry) => JSON.stringify(entry)).join('\n');
        if (options.out) {
          await writeFile(options.out, entries.length > 0 ? `${text}\n` : '');
          process.stderr.write(`wrote ${entries.length} entries to ${options.out}\n`);
        } else if (entries.length > 0) {
          process.stdout.write(`${text}\n`);
        }
      });
    });
  return sessions;
}
