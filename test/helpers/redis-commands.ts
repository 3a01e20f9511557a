/**
 * What a Redis client sends, seen through MONITOR: for the tests that check every script and
 * transaction stays on one Cluster slot.
 */
import { Redis } from 'ioredis';
import { expect } from 'vitest';
import { REDIS_URL, uniqueName } from './services.js';

/** One command the client sent, with the commands its Lua script (or its MULTI block) ran. */
export interface Group {
  /** The command our connection sent (lower-cased name first), or MULTI…EXEC as one group. */
  commands: string[][];
}

/**
 * Records, with MONITOR on a second connection, every command `redis` sends while `run` runs,
 * each together with the commands its Lua script ran. Nothing sleeps: an ECHO sent after `run`
 * marks the end of the stream.
 */
export async function recordCommands(redis: Redis, run: () => Promise<void>): Promise<Group[]> {
  const info = String(await redis.call('CLIENT', 'INFO'));
  const source = /addr=(\S+)/.exec(info)?.[1];
  expect(source).toBeDefined();
  const monitor = await new Redis(REDIS_URL).monitor();
  const groups: Group[] = [];
  const marker = uniqueName('end');
  let current: Group | undefined;
  let inMulti = false;
  let markerSeen!: () => void;
  const done = new Promise<void>((resolve) => {
    markerSeen = resolve;
  });
  monitor.on('monitor', (_time: string, args: string[], from: string) => {
    const name = (args[0] ?? '').toLowerCase();
    if (from === 'lua') {
      current?.commands.push([name, ...args.slice(1)]);
      return;
    }
    if (from !== source) {
      if (!inMulti) current = undefined;
      return;
    }
    if (name === 'echo' && args[1] === marker) {
      markerSeen();
      return;
    }
    if (inMulti) {
      current?.commands.push([name, ...args.slice(1)]);
      if (name === 'exec' || name === 'discard') inMulti = false;
      return;
    }
    current = { commands: [[name, ...args.slice(1)]] };
    inMulti = name === 'multi';
    groups.push(current);
  });
  try {
    await run();
    await redis.echo(marker);
    await done;
  } finally {
    monitor.disconnect();
  }
  return groups;
}

/** The keys of one command, as the server itself parses them. */
export async function keysOf(redis: Redis, command: string[]): Promise<string[]> {
  // A bare command name (TIME, PING) takes no keys; GETKEYS refuses to parse it at all.
  if (command.length === 1) return [];
  try {
    return (await redis.call('COMMAND', 'GETKEYS', ...command)) as string[];
  } catch (error) {
    // ECHO, CLIENT and the like take no keys.
    if (/no key arguments/i.test(String(error))) return [];
    throw error;
  }
}
