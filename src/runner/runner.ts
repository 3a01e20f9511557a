import { randomUUID } from 'node:crypto';
import type { Options, SDKMessage, SDKResultMessage } from '@anthropic-ai/claude-agent-sdk';
import type { TranscriptStore } from '../backends/backend.js';
import { tenantProjectKey } from '../backends/registry.js';
import type { UsageFigures } from '../core/daily-usage.js';
import type { TranscriptEntry } from '../core/entries.js';
import { isSessionHubError, SessionHubError } from '../core/errors.js';
import type { Identity } from '../core/identity.js';
import type { Lease } from '../core/lease.js';
import {
  DEFAULT_RETRY_POLICY,
  type FailureKind,
  failureKindOfAssistantError,
  failureKindOfText,
  isRetryable,
  type RetryPolicy,
  retryDelayMs,
} from '../core/retry.js';
import type { SessionRecord } from '../core/session-record.js';
import type { SessionUsage } from '../core/usage.js';
import type { CreateInput, ForkInput } from '../hub/inputs.js';
import {
  type AgentOptionName,
  type AgentOptions,
  agentOptionsKey,
  DEFAULT_CALLER_OPTIONS,
  mergeAgentOptions,
  parseCallerOptions,
} from './agent-options.js';
import { LiveSession } from './live-session.js';
import { repairMirror } from './mirror-repair.js';
import { Turn, type TurnControl, type TurnOutcome, type TurnStatus } from './turn.js';
import { counterOfResult, restoredCounter, turnUsageEntry } from './turn-usage.js';
import { type PoolTimers, WarmPool, type WarmSession } from './warm-pool.js';
import { removeLocalTranscripts, type TenantWorkspace, tenantWorkspace } from './workspace.js';

/** What the runner needs of the hub; the hub implements it. */
export interface RunnerHost {
  readonly clock: { now(): number };
  readonly instanceId: string;
  create(identity: Identity, input: CreateInput): Promise<SessionRecord>;
  fork(identity: Identity, sessionId: string, input: ForkInput): Promise<SessionRecord>;
  get(identity: Identity, sessionId: string): Promise<SessionRecord>;
  admitTurn(
    identity: Identity,
    sessionId: string,
  ): Promise<{ session: SessionRecord; maxBudgetUsd: number | undefined }>;
  acquireLease(
    identity: Identity,
    sessionId: string,
    options: { ttlMs: number; holder?: string },
  ): Promise<Lease>;
  renewLease(lease: Lease): Promise<Lease>;
  releaseLease(lease: Lease): Promise<void>;
  recordActivity(
    identity: Identity,
    sessionId: string,
    turn: { failed: boolean },
  ): Promise<SessionRecord>;
  /** The hub's onTurnEnd hook. */
  turnEnded(outcome: TurnOutcome): Promise<void>;
  /** Whether another hub asked to interrupt the turn holding the session's lease at `fence`. */
  interruptRequested(tenant: string, sessionId: string, fence: number): Promise<boolean>;
  transcriptStore(identity: Identity): TranscriptStore;
}

export interface RunnerOptions {
  /** Where tenants' working and config directories go: `<dataDir>/tenants/<tenant>/`. */
  dataDir: string;
  /** What every turn runs with. */
  agent?: AgentOptions;
  /** Per-tenant options, over the hub's. */
  tenants?: Record<string, AgentOptions>;
  /** Options a caller may set per turn (default: model and maxTurns). */
  callerOptions?: readonly AgentOptionName[];
  /** Retries of failed turns (default: 3 attempts, 0.5 s doubling up to 10 s, full jitter). */
  retry?: Partial<RetryPolicy>;
  /** The warm pool; `false` turns it off (every turn starts a process). */
  warm?: { maxSessions?: number; idleMs?: number } | false;
  /** How long a turn's lease lasts before it must be renewed (default 60 s; renewed at a third). */
  turnLeaseMs?: number;
  /**
   * How often a running turn looks for an interrupt sent through another hub (default 250 ms);
   * false: only interrupts on this hub reach its turns.
   */
  interruptPollMs?: number | false;
  /**
   * Extra query() options for what sessionhub does not manage (e.g. `pathToClaudeCodeExecutable`
   * or `spawnClaudeCodeProcess`). The runner's own settings win over these.
   */
  sdkOptions?: Partial<Options>;
  /** Randomness for retry jitter (default Math.random). */
  random?: () => number;
  /** Waiting between retries and for a busy session (default: real timers). */
  sleep?: (ms: number) => Promise<void>;
  /** Timers of the warm pool's idle timeouts and of lease renewal. */
  timers?: PoolTimers & {
    setInterval?(callback: () => void, ms: number): unknown;
    clearInterval?(handle: unknown): void;
  };
}

export interface SendOptions {
  identity: Identity;
  /** Per-turn options, within what the hub allows callers. */
  options?: AgentOptions;
  /** Wait up to this long for a turn running elsewhere to end (default 0: SESSION_BUSY at once). */
  waitMs?: number;
}

export interface StartOptions extends SendOptions {
  prompt: string;
  /** The new session's fields (title, tags, metadata, ...). */
  session?: Omit<CreateInput, 'id'>;
}

const DEFAULT_LEASE_MS = 60_000;
const DEFAULT_INTERRUPT_POLL_MS = 250;
const DEFAULT_WARM = { maxSessions: 8, idleMs: 5 * 60_000 };
const MAX_PROMPT_CHARS = 1_000_000;
const BUSY_POLL_MS = 100;

const realSleep = (ms: number) =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms);
  });

/** One attempt's end, before the runner decides what to do about it. */
interface AttemptResult {
  result: SDKResultMessage | null;
  failure: { kind: FailureKind; message: string } | null;
  mirrorErrors: Array<{ subpath?: string }>;
}

/**
 * Runs turns through the Agent SDK: one at a time per session (the hub's lease), within the
 * session's budget, retrying what is retryable, repairing transcript batches the store dropped,
 * and keeping recently used sessions warm in a live process.
 */
export class Runner {
  private readonly pool: WarmPool | null;
  private readonly retry: RetryPolicy;
  private readonly random: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly leaseMs: number;
  private readonly workspaces = new Map<string, Promise<TenantWorkspace>>();
  private readonly running = new Set<Promise<unknown>>();
  /** Turns under way on this runner, by session: what interrupt() reaches. */
  private readonly underWay = new Map<string, TurnControl>();
  private closed = false;

  constructor(
    private readonly host: RunnerHost,
    private readonly options: RunnerOptions,
  ) {
    this.retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.random = options.random ?? Math.random;
    this.sleep = options.sleep ?? realSleep;
    this.leaseMs = options.turnLeaseMs ?? DEFAULT_LEASE_MS;
    const warm = options.warm === false ? null : { ...DEFAULT_WARM, ...options.warm };
    this.pool = warm
      ? new WarmPool({
          ...warm,
          timers: options.timers,
          // A warm process is stopped without its exit flush: its turns are already recorded.
          onEvict: (_id, session) => session.live.kill(),
        })
      : null;
  }

  /** Warm sessions right now. */
  get warmSessions(): number {
    return this.pool?.size ?? 0;
  }

  /** Creates a session and runs its first turn. */
  start(options: StartOptions): Turn {
    const sessionId = randomUUID();
    return this.track(
      new Turn(sessionId, async (control) => {
        const prompt = parsePrompt(options.prompt);
        const agent = this.agentOptions(options.identity, options.options);
        const session = await this.host.create(options.identity, {
          ...options.session,
          id: sessionId,
        });
        return this.runTurn(control, options.identity, session.id, prompt, agent, options.waitMs);
      }),
    );
  }

  /** Runs the next turn of an existing session. */
  send(sessionId: string, prompt: string, options: SendOptions): Turn {
    return this.track(
      new Turn(sessionId, async (control) => {
        const text = parsePrompt(prompt);
        const agent = this.agentOptions(options.identity, options.options);
        return this.runTurn(control, options.identity, sessionId, text, agent, options.waitMs);
      }),
    );
  }

  /** Forks a session (at a message or at the end) and runs a turn on the new branch. */
  forkAndSend(
    sessionId: string,
    prompt: string,
    options: SendOptions & { fork?: ForkInput },
  ): Turn {
    return this.track(
      new Turn(undefined, async (control) => {
        const text = parsePrompt(prompt);
        const agent = this.agentOptions(options.identity, options.options);
        const fork = await this.host.fork(options.identity, sessionId, options.fork ?? {});
        control.setSessionId(fork.id);
        return this.runTurn(control, options.identity, fork.id, text, agent, options.waitMs);
      }),
    );
  }

  /**
   * Interrupts the session's turn if one runs on this runner; false when none does (it ended, or
   * it runs in another process).
   */
  async interrupt(sessionId: string): Promise<boolean> {
    const control = this.underWay.get(sessionId);
    if (!control) return false;
    await control.interrupt();
    return true;
  }

  /** Interrupts every turn running on this runner (shutdown); returns how many. */
  async interruptAll(): Promise<number> {
    const controls = [...this.underWay.values()];
    await Promise.all(controls.map((control) => control.interrupt().catch(() => {})));
    return controls.length;
  }

  /** Turns running on this runner right now. */
  get runningTurns(): number {
    return this.underWay.size;
  }

  /** Stops a session's warm process, if it has one (the session was deleted, archived, ...). */
  dropWarm(sessionId: string): void {
    this.pool?.drop(sessionId);
  }

  /** Stops taking turns, lets running ones finish, and stops every warm process. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.running]);
    this.pool?.clear();
  }

  private track(turn: Turn): Turn {
    if (this.closed) {
      throw new SessionHubError('CLOSED', 'This hub was closed; create a new one.', {});
    }
    const done = turn.done().catch(() => {});
    this.running.add(done);
    void done.finally(() => this.running.delete(done));
    return turn;
  }

  private agentOptions(identity: Identity, callerOptions: unknown): AgentOptions {
    const allowed = this.options.callerOptions ?? DEFAULT_CALLER_OPTIONS;
    const caller = parseCallerOptions(callerOptions, allowed);
    return mergeAgentOptions(this.options.agent, this.options.tenants?.[identity.tenant], caller);
  }

  private workspace(tenant: string): Promise<TenantWorkspace> {
    let workspace = this.workspaces.get(tenant);
    if (!workspace) {
      workspace = tenantWorkspace(this.options.dataDir, tenant);
      this.workspaces.set(tenant, workspace);
      workspace.catch(() => this.workspaces.delete(tenant));
    }
    return workspace;
  }

  private async runTurn(
    control: TurnControl,
    identity: Identity,
    sessionId: string,
    prompt: string,
    agent: AgentOptions,
    waitMs = 0,
  ): Promise<TurnOutcome> {
    // Refusals (expired, archived, over a limit) come before any process starts.
    const admission = await this.host.admitTurn(identity, sessionId);
    const lease = await this.acquire(identity, sessionId, waitMs);
    const renewal = this.keepRenewing(lease);
    const watch = this.watchForInterrupts(
      control,
      admission.session.tenant,
      sessionId,
      lease.fence,
    );
    this.underWay.set(sessionId, control);
    try {
      return await this.attempts(control, identity, admission, lease.fence, prompt, agent, renewal);
    } finally {
      this.underWay.delete(sessionId);
      watch.stop();
      renewal.stop();
      await this.host.releaseLease(renewal.current()).catch(() => {});
    }
  }

  private async attempts(
    control: TurnControl,
    identity: Identity,
    admission: { session: SessionRecord; maxBudgetUsd: number | undefined },
    fence: number,
    prompt: string,
    agent: AgentOptions,
    renewal: { lost(): boolean },
  ): Promise<TurnOutcome> {
    const sessionId = admission.session.id;
    const tenant = admission.session.tenant;
    const store = this.host.transcriptStore(identity);
    const workspace = await this.workspace(tenant);
    const optionsKey = agentOptionsKey(agent);
    let attempt = 0;
    for (;;) {
      attempt += 1;
      const warm = attempt === 1 ? this.takeWarm(sessionId, optionsKey, fence, admission) : null;
      const process =
        warm ?? (await this.startProcess(sessionId, store, workspace, agent, admission));
      const ended = await this.runAttempt(control, process.live, prompt);
      if (renewal.lost()) {
        process.live.kill();
        throw new SessionHubError(
          'LEASE_LOST',
          `The lease on session ${sessionId} was lost during the turn (the backend was unreachable for longer than the lease). The turn's transcript is kept; send again.`,
          { sessionId },
        );
      }
      if (ended.mirrorErrors.length > 0) {
        const localConfigDir = process.live.localConfigDir ?? workspace.configDir;
        await this.repair(control, store, localConfigDir, sessionId, ended.mirrorErrors);
      }
      const status = turnStatus(ended, control.interruptRequested);
      if (
        status === 'failed' &&
        ended.failure &&
        isRetryable(ended.failure.kind) &&
        attempt < this.retry.attempts
      ) {
        process.live.kill();
        const delayMs = retryDelayMs(this.retry, attempt, this.random);
        control.emit({
          type: 'sessionhub_retry',
          attempt,
          delayMs,
          reason: ended.failure.kind,
          error: ended.failure.message,
          session_id: sessionId,
        });
        await this.sleep(delayMs);
        continue;
      }
      await this.settle(process, ended, sessionId, store, workspace, optionsKey, fence, admission);
      const session = await this.afterTurn(identity, sessionId, status === 'failed');
      const outcome: TurnOutcome = {
        sessionId,
        status,
        result: ended.result,
        text:
          ended.result?.subtype === 'success' && !ended.result.is_error ? ended.result.result : '',
        error:
          status === 'completed' ? null : (ended.failure ?? { kind: 'unknown', message: status }),
        attempts: attempt,
        warm: warm !== null,
        session,
        spent: usageSpent(admission.session.usage, session.usage),
      };
      await this.host.turnEnded(outcome);
      return outcome;
    }
  }

  /** Runs one attempt on a live process and classifies how it ended. */
  private async runAttempt(
    control: TurnControl,
    live: LiveSession,
    prompt: string,
  ): Promise<AttemptResult> {
    const mirrorErrors: Array<{ subpath?: string }> = [];
    let result: SDKResultMessage | null = null;
    let assistantError: FailureKind | null = null;
    let failure: AttemptResult['failure'] = null;
    control.onInterrupt(() => live.interrupt());
    try {
      const messages = live.turn(prompt);
      for (;;) {
        const next = await messages.next();
        if (next.done) {
          result = next.value;
          break;
        }
        const message: SDKMessage = next.value;
        if (message.type === 'system' && message.subtype === 'mirror_error') {
          mirrorErrors.push({ subpath: message.key.subpath });
        }
        if (message.type === 'assistant' && message.error) {
          assistantError = failureKindOfAssistantError(message.error);
        }
        control.emit(message);
      }
      if (result === null) {
        failure = { kind: 'connection', message: 'The SDK process ended without a result.' };
      } else if (result.is_error) {
        const text =
          result.subtype === 'success' ? result.result : result.errors.join('; ') || result.subtype;
        const fromText = failureKindOfText(text);
        failure = {
          kind: fromText !== 'unknown' ? fromText : (assistantError ?? 'unknown'),
          message: text,
        };
      }
    } catch (error) {
      const message = (error as Error).message ?? String(error);
      failure = {
        kind: control.interruptRequested ? 'aborted' : failureKindOfText(message),
        message,
      };
    } finally {
      control.onInterrupt(null);
    }
    if (result && result.subtype === 'error_max_budget_usd') {
      failure = { kind: 'budget', message: 'The turn reached its budget (maxBudgetUsd).' };
    } else if (result && result.subtype === 'error_max_turns') {
      failure = { kind: 'max_turns', message: 'The turn reached maxTurns.' };
    }
    return { result, failure, mirrorErrors };
  }

  /** A warm process for this turn, if there is one that is still good. */
  private takeWarm(
    sessionId: string,
    optionsKey: string,
    fence: number,
    admission: { session: SessionRecord; maxBudgetUsd: number | undefined },
  ): WarmSession | null {
    const warm = this.pool?.take(sessionId);
    if (!warm) return null;
    const spent = warm.counter.costUsd - warm.counterAtStart.costUsd;
    const budgetLeft = warm.budgetUsd === undefined ? undefined : warm.budgetUsd - spent;
    const fits =
      admission.maxBudgetUsd === undefined
        ? budgetLeft === undefined
        : budgetLeft !== undefined && budgetLeft <= admission.maxBudgetUsd + 1e-9;
    // Another turn anywhere takes the lease in between (the fence moves by more than one) or
    // adds a turn: then this process's view of the transcript is stale.
    const fresh =
      warm.live.isFinished === false &&
      warm.fence + 1 === fence &&
      warm.turns === admission.session.usage.turns &&
      warm.optionsKey === optionsKey &&
      fits;
    if (!fresh) {
      warm.live.kill();
      return null;
    }
    return warm;
  }

  /** Starts a process for the session: a first turn, or a cold resume from the store. */
  private async startProcess(
    sessionId: string,
    store: TranscriptStore,
    workspace: TenantWorkspace,
    agent: AgentOptions,
    admission: { session: SessionRecord; maxBudgetUsd: number | undefined },
  ): Promise<WarmSession> {
    const key = { projectKey: tenantProjectKey(admission.session.tenant), sessionId };
    const transcript = await store.load(key);
    const restored = restoredCounter(transcript);
    // The SDK loads the transcript again to resume; hand it what was just read.
    const sessionStore = onceLoaded(store, sessionId, transcript);
    const { env, hooks, ...rest } = agent;
    const options: Options = {
      ...this.options.sdkOptions,
      ...rest,
      ...(hooks ? { hooks } : {}),
      cwd: workspace.cwd,
      env: { ...process.env, ...env, CLAUDE_CONFIG_DIR: workspace.configDir },
      sessionStore,
      persistSession: true,
      ...(transcript === null ? { sessionId } : { resume: sessionId }),
      ...(admission.maxBudgetUsd === undefined ? {} : { maxBudgetUsd: admission.maxBudgetUsd }),
    };
    const live = new LiveSession(sessionId, options);
    return {
      live,
      tenant: admission.session.tenant,
      optionsKey: agentOptionsKey(agent),
      fence: 0,
      turns: admission.session.usage.turns,
      counter: restored,
      budgetUsd: admission.maxBudgetUsd,
      counterAtStart: restored,
    };
  }

  /**
   * After an attempt: record a turn of a process that stays alive (its exit flush will never
   * come) and park it, or let a one-turn process exit so the SDK writes its own cost-state.
   */
  private async settle(
    process: WarmSession,
    ended: AttemptResult,
    sessionId: string,
    store: TranscriptStore,
    workspace: TenantWorkspace,
    optionsKey: string,
    fence: number,
    admission: { session: SessionRecord },
  ): Promise<void> {
    const live = process.live;
    const counter = ended.result ? counterOfResult(ended.result) : process.counter;
    const keep = this.pool !== null && !live.isFinished && ended.result !== null && !this.closed;
    const hasRecordedTurns = process.counter !== process.counterAtStart;
    const key = { projectKey: tenantProjectKey(admission.session.tenant), sessionId };
    if (keep || hasRecordedTurns) {
      if (ended.result) {
        const entry = turnUsageEntry(
          sessionId,
          process.counter,
          counter,
          ended.result.duration_ms,
          this.host.clock.now(),
        );
        await store.append(key, [entry as TranscriptEntry]);
      }
      if (!keep) {
        live.kill();
        return;
      }
      const after = await this.host.get({ tenant: process.tenant, admin: true }, sessionId);
      this.pool?.put(sessionId, {
        ...process,
        optionsKey,
        fence,
        turns: after.usage.turns,
        counter,
      });
      return;
    }
    // A process that ran one turn exits normally: the SDK flushes its cost-state on the way out.
    const trailing = await live.close();
    const mirrorErrors = trailing.flatMap((message) =>
      message.type === 'system' && message.subtype === 'mirror_error'
        ? [{ subpath: message.key.subpath }]
        : [],
    );
    const localConfigDir = live.localConfigDir ?? workspace.configDir;
    for (const error of mirrorErrors) {
      await repairMirror(store, localConfigDir, { ...key, subpath: error.subpath }).catch(() => {});
    }
    await removeLocalTranscripts(workspace.configDir, sessionId).catch(() => {});
  }

  private async repair(
    control: TurnControl,
    store: TranscriptStore,
    localConfigDir: string,
    sessionId: string,
    errors: Array<{ subpath?: string }>,
  ): Promise<void> {
    // The tenant store files every key under the tenant's project, whatever is given here.
    const key = { projectKey: 'sessionhub-runner', sessionId };
    const subpaths = [...new Set(errors.map((error) => error.subpath))];
    const repaired: Array<{ subpath: string | null; copied: number }> = [];
    for (const subpath of subpaths) {
      const result = await repairMirror(store, localConfigDir, {
        ...key,
        ...(subpath ? { subpath } : {}),
      });
      repaired.push({ subpath: subpath ?? null, copied: result.copied });
    }
    control.emit({ type: 'sessionhub_mirror_repair', repaired, session_id: sessionId });
  }

  /** Records the turn on the session: its activity, and whether it failed. */
  private async afterTurn(
    identity: Identity,
    sessionId: string,
    failed: boolean,
  ): Promise<SessionRecord> {
    try {
      return await this.host.recordActivity(identity, sessionId, { failed });
    } catch (error) {
      // The session may have expired or been deleted while the turn ran; report what is there.
      if (isSessionHubError(error, 'SESSION_EXPIRED')) return this.host.get(identity, sessionId);
      throw error;
    }
  }

  /** Takes the session's lease, waiting up to `waitMs` for a running turn to end. */
  private async acquire(identity: Identity, sessionId: string, waitMs: number): Promise<Lease> {
    const deadline = this.host.clock.now() + Math.max(0, waitMs);
    for (;;) {
      try {
        return await this.host.acquireLease(identity, sessionId, {
          ttlMs: this.leaseMs,
          holder: `${this.host.instanceId}:turn`,
        });
      } catch (error) {
        if (!isSessionHubError(error, 'SESSION_BUSY') || this.host.clock.now() >= deadline) {
          throw error;
        }
        await this.sleep(Math.min(BUSY_POLL_MS, Math.max(1, deadline - this.host.clock.now())));
      }
    }
  }

  /** Renews the turn's lease at a third of its life until stopped. */
  /** Every `interruptPollMs`, asks the backend whether another hub wants this turn stopped. */
  private watchForInterrupts(
    control: TurnControl,
    tenant: string,
    sessionId: string,
    fence: number,
  ): { stop(): void } {
    const pollMs = this.options.interruptPollMs ?? DEFAULT_INTERRUPT_POLL_MS;
    if (pollMs === false) return { stop: () => {} };
    const { setEvery, clearEvery } = this.intervalTimers();
    let asking = false;
    const handle = setEvery(() => {
      if (asking || control.interruptRequested) return;
      asking = true;
      this.host
        .interruptRequested(tenant, sessionId, fence)
        .then((requested) => (requested ? control.interrupt() : undefined))
        // An unreachable backend fails the turn's lease renewal too; nothing to add here.
        .catch(() => {})
        .finally(() => {
          asking = false;
        });
    }, pollMs);
    return { stop: () => clearEvery(handle) };
  }

  /** setInterval and clearInterval, the injected ones if given; real ones never hold the process. */
  private intervalTimers(): {
    setEvery(callback: () => void, ms: number): unknown;
    clearEvery(handle: unknown): void;
  } {
    const timers = this.options.timers;
    return {
      setEvery:
        timers?.setInterval ??
        ((callback: () => void, ms: number) => {
          const handle = setInterval(callback, ms);
          handle.unref();
          return handle;
        }),
      clearEvery:
        timers?.clearInterval ?? ((handle: unknown) => clearInterval(handle as NodeJS.Timeout)),
    };
  }

  private keepRenewing(lease: Lease): {
    current(): Lease;
    lost(): boolean;
    stop(): void;
  } {
    let current = lease;
    let lost = false;
    const { setEvery, clearEvery } = this.intervalTimers();
    const handle = setEvery(
      () => {
        this.host.renewLease(current).then(
          (renewed) => {
            current = renewed;
          },
          () => {
            lost = true;
          },
        );
      },
      Math.max(1, Math.floor(this.leaseMs / 3)),
    );
    return {
      current: () => current,
      lost: () => lost,
      stop: () => clearEvery(handle),
    };
  }
}

/** The counted figures between two readings of a session's usage (pending tokens left out). */
function usageSpent(before: SessionUsage, after: SessionUsage): UsageFigures {
  const counted = (usage: SessionUsage, name: keyof SessionUsage['tokens']) =>
    usage.tokens[name] - usage.pendingTokens[name];
  const tokens = {} as SessionUsage['tokens'];
  for (const name of Object.keys(after.tokens) as Array<keyof SessionUsage['tokens']>) {
    tokens[name] = Math.max(0, counted(after, name) - counted(before, name));
  }
  return {
    costUsd: Math.max(0, Math.round((after.costUsd - before.costUsd) * 1e9) / 1e9),
    tokens,
    turns: Math.max(0, after.turns - before.turns),
  };
}

function turnStatus(ended: AttemptResult, interrupted: boolean): TurnStatus {
  if (interrupted) return 'interrupted';
  if (!ended.failure) return 'completed';
  if (ended.failure.kind === 'budget' || ended.failure.kind === 'max_turns') return 'stopped';
  if (ended.failure.kind === 'aborted') return 'interrupted';
  return 'failed';
}

function parsePrompt(prompt: unknown): string {
  if (typeof prompt !== 'string' || prompt.trim() === '' || prompt.length > MAX_PROMPT_CHARS) {
    throw new SessionHubError(
      'INVALID_INPUT',
      `A prompt is a non-empty string of at most ${MAX_PROMPT_CHARS} characters.`,
      { prompt: typeof prompt === 'string' ? `${prompt.length} characters` : typeof prompt },
    );
  }
  return prompt;
}

/**
 * The store as the SDK sees it for one resume: its first load of the main transcript gets the
 * entries the runner already read, everything else goes to the store.
 */
function onceLoaded(
  store: TranscriptStore,
  sessionId: string,
  entries: TranscriptEntry[] | null,
): TranscriptStore {
  let served = false;
  return {
    append: (key, batch) => store.append(key, batch),
    load: async (key) => {
      if (!served && key.sessionId === sessionId && key.subpath === undefined) {
        served = true;
        return entries;
      }
      return store.load(key);
    },
    listSessions: (projectKey) => store.listSessions(projectKey),
    listSessionSummaries: (projectKey) => store.listSessionSummaries(projectKey),
    delete: (key) => store.delete(key),
    listSubkeys: (key) => store.listSubkeys(key),
  };
}
