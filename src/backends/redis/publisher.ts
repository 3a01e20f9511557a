import { projectKeys } from './keys.js';
import { PUBLISH_SUMMARIES, type RedisClient, runScript } from './scripts.js';

interface Pending {
  sessionId: string;
  mtime: number;
  json: string;
  resolve(): void;
  reject(error: unknown): void;
}

/** Most sessions one call carries, so that one call never holds the server for long. */
const MAX_BATCH = 256;

/**
 * Step 2 of main appends: publishes folded summaries, one call per project for all the appends
 * that reach this step in the same tick. Replies arrive in bursts under load, so their
 * continuations run back to back and share the call, which saves most of a second command per
 * append on the client and the server. A lone append still goes out at once, right after the
 * current microtasks; nothing waits on a timer.
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

  publish(projectKey: string, sessionId: string, mtime: number, json: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let queue = this.queues.get(projectKey);
      if (!queue) {
        queue = [];
        this.queues.set(projectKey, queue);
      }
      queue.push({ sessionId, mtime, json, resolve, reject });
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
    const scriptKeys = [keys.sessions, keys.summaries];
    const args: Array<string | number> = [];
    for (const item of batch) {
      scriptKeys.push(keys.gone(item.sessionId));
      args.push(item.sessionId, item.mtime, item.json);
    }
    runScript(this.client, PUBLISH_SUMMARIES, scriptKeys, args).then(
      () => {
        for (const item of batch) item.resolve();
      },
      (error: unknown) => {
        for (const item of batch) item.reject(error);
      },
    );
  }
}
