import type { Charge } from './charges.js';
import { projectKeys } from './keys.js';
import { PUBLISH, type RedisClient, runScript } from './scripts.js';

/** What one session brings to step 2 of an append (or to a delete, its charges only). */
export interface Publication {
  sessionId: string;
  mtime: number;
  /** The folded summary's JSON; null publishes no summary (charges only). */
  json: string | null;
  /** The owner the charges go to ('' with no charges). */
  owner: string;
  /** The session's pending charges, oldest first, to apply to daily usage. */
  charges: Charge[];
}

interface Pending extends Publication {
  resolve(): void;
  reject(error: unknown): void;
}

/** Most sessions one call carries, so that one call never holds the server for long. */
const MAX_BATCH = 256;

/**
 * Step 2 of main appends: publishes folded summaries and applies pending daily-usage charges,
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
    // Day HASHes follow the gone markers; each charge names its own by position (1-based).
    const dayIndex = new Map<string, number>();
    const args: Array<string | number> = [batch.length];
    for (const item of batch) {
      args.push(item.sessionId, item.mtime, item.json ?? '', item.owner, item.charges.length);
      for (const charge of item.charges) {
        let index = dayIndex.get(charge.day);
        if (index === undefined) {
          scriptKeys.push(keys.day(charge.day));
          index = scriptKeys.length;
          dayIndex.set(charge.day, index);
        }
        args.push(charge.stamp, index, charge.day, ...charge.figures);
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
