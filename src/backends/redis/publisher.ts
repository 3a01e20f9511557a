import type { Charge, Spend } from './charges.js';
import { projectKeys } from './keys.js';
import { PUBLISH, type RedisClient, runScript } from './scripts.js';

/** What one session brings to step 2 of an append (or to a delete, its charges only). */
export interface Publication {
  sessionId: string;
  mtime: number;
  /** The folded summary's JSON; null publishes no summary (charges only). */
  json: string | null;
  /** The owner the charges and spends go to ('' with neither). */
  owner: string;
  /** Increments earlier versions left pending, oldest first, to add to daily usage. */
  charges: Charge[];
  /** Totals of the session's registration per day, to publish to daily usage. */
  spends: Spend[];
}

interface Pending extends Publication {
  resolve(): void;
  reject(error: unknown): void;
}

/** Most sessions one call carries, so that one call never holds the server for long. */
const MAX_BATCH = 256;

/**
 * Step 2 of main appends: publishes folded summaries and daily usage (see charges.ts),
 * one call per project for all the appends that reach this step in the same tick. Replies
 * arrive in bursts under load, so their continuations run back to back and share the call, which
 * saves most of a second command per append on the client and the server. A lone append still
 * goes out at once, right after the current microtasks; nothing waits on a timer.
 */
export class SummaryPublisher {
  private readonly client: RedisClient;
  private readonly prefix: string;
  private readonly queues = new Map<string, Pending[]>();
  private scheduled = false;

  constructor(client: RedisClient, prefix: string) {
    this.client = client;
    this.prefix = prefix;
  }

  publish(projectKey: string, publication: Publication): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let queue = this.queues.get(projectKey);
      if (!queue) {
        queue = [];
        this.queues.set(projectKey, queue);
      }
      queue.push({ ...publication, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // A tick queued from a microtask runs once the microtask queue is drained, so every
        // continuation woken by the same burst of replies is in the batch.
        process.nextTick(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const queues = [...this.queues];
    this.queues.clear();
    for (const [projectKey, queue] of queues) {
      for (let i = 0; i < queue.length; i += MAX_BATCH) {
        this.send(projectKey, queue.slice(i, i + MAX_BATCH));
      }
    }
  }

  private send(projectKey: string, batch: Pending[]): void {
    const keys = projectKeys(this.prefix, projectKey);
    const scriptKeys = [keys.sessions, keys.summaries, keys.charged, keys.days];
    for (const item of batch) scriptKeys.push(keys.gone(item.sessionId));
    // The HASHes and SETs of daily usage follow the gone markers; each charge and spend names
    // its own by position (1-based), each key given once.
    const keyIndex = new Map<string, number>();
    const indexOf = (key: string): number => {
      let index = keyIndex.get(key);
      if (index === undefined) {
        scriptKeys.push(key);
        index = scriptKeys.length;
        keyIndex.set(key, index);
      }
      return index;
    };
    const args: Array<string | number> = [batch.length];
    for (const item of batch) {
      args.push(item.sessionId, item.mtime, item.json ?? '', item.owner, item.charges.length);
      for (const charge of item.charges) {
        args.push(charge.stamp, indexOf(keys.day(charge.day)), charge.day, ...charge.figures);
      }
      args.push(item.spends.length);
      for (const spend of item.spends) {
        args.push(
          indexOf(keys.spend(item.owner, spend.day)),
          indexOf(keys.owners(spend.day)),
          spend.day,
          spend.rid,
          spend.value,
        );
      }
    }
    runScript(this.client, PUBLISH, scriptKeys, args).then(
      () => {
        for (const item of batch) item.resolve();
      },
      (error: unknown) => {
        for (const item of batch) item.reject(error);
      },
    );
  }
}
