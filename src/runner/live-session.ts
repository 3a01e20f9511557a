import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  type Options,
  type Query,
  query,
  type SDKMessage,
  type SDKResultMessage,
  type SDKUserMessage,
  type SpawnedProcess,
} from '@anthropic-ai/claude-agent-sdk';
import { InputQueue } from './input-queue.js';

/**
 * One running SDK process for one session, in streaming-input mode: it stays alive between
 * turns, so a follow-up message skips the process start and the transcript load. The runner
 * keeps idle ones in the warm pool; a cold turn starts a new one and may close it afterwards.
 */
export class LiveSession {
  readonly sessionId: string;
  private readonly input = new InputQueue<SDKUserMessage>();
  private readonly query: Query;
  private readonly messages: AsyncIterator<SDKMessage, void>;
  private finished = false;
  private inTurn = false;
  /** Messages that arrive after the process was told to end (a mirror_error of its last flush). */
  private readonly trailing: SDKMessage[] = [];

  private child: SpawnedProcess | null = null;
  /**
   * The CLAUDE_CONFIG_DIR the CLI really runs with: for a resume the SDK materialises the
   * transcript into a temporary config dir of its own, and the CLI writes its local copy there.
   */
  localConfigDir: string | null = null;

  constructor(sessionId: string, options: Options) {
    this.sessionId = sessionId;
    const spawnProcess =
      options.spawnClaudeCodeProcess ??
      ((spawnOptions) =>
        spawn(spawnOptions.command, spawnOptions.args, {
          cwd: spawnOptions.cwd,
          env: spawnOptions.env,
          signal: spawnOptions.signal,
          stdio: ['pipe', 'pipe', 'pipe'],
        }));
    // Keep the child: kill() must stop it without the graceful exit, in which the CLI would
    // write a cost-state that repeats turns the runner already recorded.
    const capture: Options['spawnClaudeCodeProcess'] = (spawnOptions) => {
      this.localConfigDir = spawnOptions.env.CLAUDE_CONFIG_DIR ?? null;
      this.child = spawnProcess(spawnOptions);
      return this.child;
    };
    this.query = query({
      prompt: this.input,
      options: { ...options, spawnClaudeCodeProcess: capture },
    });
    this.messages = this.query[Symbol.asyncIterator]();
  }

  /** Whether the process has ended (exited, crashed or was closed); it cannot run turns then. */
  get isFinished(): boolean {
    return this.finished;
  }

  /**
   * Sends `prompt` and yields the SDK's messages up to and including the turn's result, which
   * it returns. Throws what the SDK throws when the process fails; returns null if the process
   * ended without a result.
   */
  async *turn(
    prompt: string,
    promptUuid = randomUUID(),
  ): AsyncGenerator<SDKMessage, SDKResultMessage | null> {
    if (this.finished) throw new Error('LiveSession.turn() on a finished session');
    if (this.inTurn) throw new Error('LiveSession.turn() while a turn runs');
    this.inTurn = true;
    try {
      this.input.push({
        type: 'user',
        message: { role: 'user', content: prompt },
        parent_tool_use_id: null,
        session_id: this.sessionId,
        uuid: promptUuid,
      } as SDKUserMessage);
      for (;;) {
        let next: IteratorResult<SDKMessage, void>;
        try {
          next = await this.messages.next();
        } catch (error) {
          this.finished = true;
          throw error;
        }
        if (next.done) {
          this.finished = true;
          return null;
        }
        yield next.value;
        if (next.value.type === 'result') return next.value;
      }
    } finally {
      this.inTurn = false;
    }
  }

  /** Asks the process to stop the running turn; the turn then ends with its result. */
  async interrupt(): Promise<void> {
    if (this.finished) return;
    await this.query.interrupt();
  }

  /**
   * Ends the prompt stream and waits for the process to exit on its own, flushing the last
   * transcript entries (the SDK writes the session's cost-state then). Returns the messages it
   * sent on the way out. If it does not exit within `timeoutMs`, it is stopped.
   */
  async close(timeoutMs = 10_000): Promise<SDKMessage[]> {
    if (!this.input.isEnded) this.input.end();
    if (this.finished) return this.trailing.splice(0);
    let timer: NodeJS.Timeout | undefined;
    const drained = (async () => {
      try {
        for (;;) {
          const next = await this.messages.next();
          if (next.done) return;
          this.trailing.push(next.value);
        }
      } catch {
        // A process that fails on its way out has nothing more to say.
      }
    })();
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    try {
      if ((await Promise.race([drained, timedOut])) === 'timeout') this.query.close();
    } finally {
      clearTimeout(timer);
      this.finished = true;
    }
    return this.trailing.splice(0);
  }

  /** Stops the process now (SIGKILL), whatever it is doing, without its exit flush. */
  kill(): void {
    this.finished = true;
    if (this.child && !this.child.killed) this.child.kill('SIGKILL');
    if (!this.input.isEnded) this.input.end();
    this.query.close();
  }

  /** The CLI's process id, once it has started (for diagnostics and tests). */
  get pid(): number | undefined {
    return (this.child as { pid?: number } | null)?.pid;
  }
}
