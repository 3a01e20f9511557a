import { createHash, randomUUID } from 'node:crypto';
import { forkSession } from '@anthropic-ai/claude-agent-sdk';
import type { Backend, TranscriptStore } from '../backends/backend.js';
import { type OpenBackendOptions, openBackend } from '../backends/open.js';
import {
  type NewSession,
  type SessionPatch,
  type StoredSession,
  sessionExists,
  tenantProjectKey,
} from '../backends/registry.js';
import { type Clock, systemClock } from '../core/clock.js';
import {
  addToDailyUsage,
  type DailyUsage,
  emptyUsageFigures,
  type UsageFigures,
  utcDay,
} from '../core/daily-usage.js';
import type { TranscriptEntry } from '../core/entries.js';
import { SessionHubError } from '../core/errors.js';
import { sessionExpired } from '../core/expiry.js';
import {
  canAccess,
  type Identity,
  parseIdentity,
  sessionNotFound,
  visibleScope,
} from '../core/identity.js';
import type { Lease } from '../core/lease.js';
import { checkLimit, type Limits, remainingBudgetUsd } from '../core/limits.js';
import {
  effectiveStatus,
  encodeCursor,
  parseSessionQuery,
  type SessionRecord,
} from '../core/session-record.js';
import { foldUsage, forkUsageState } from '../core/usage.js';
import {
  Runner,
  type RunnerHost,
  type RunnerOptions,
  type SendOptions,
  type StartOptions,
} from '../runner/runner.js';
import type { Turn } from '../runner/turn.js';
import { callHook, type SessionHooks } from './hooks.js';
import {
  type CreateInput,
  type ExtendInput,
  type ForkInput,
  parseCreateInput,
  parseExtendInput,
  parseForkInput,
  parseMetadata,
  parseOverridesInput,
  parseSessionId,
  parseStatsInput,
  parseTags,
  parseTitle,
  parseUpdateInput,
  type StatsInput,
  type UpdateInput,
} from './inputs.js';
import { HubPolicies, type TenantPolicy } from './policies.js';
import { toRecord } from './records.js';
import { TenantTranscriptStore } from './scoped-store.js';
import { Sweeper, type SweepOptions, type SweepResult, type Timers } from './sweeper.js';

export interface HubOptions {
  backend: Backend;
  /** Close the backend when the hub closes. Default false: the caller owns it. */
  ownsBackend?: boolean;
  /** Where every time the hub reads comes from. Default: the system clock. */
  clock?: Clock;
  /** The hub's expiry policy, over the defaults (idle 30 days, kept 7 more). */
  expiry?: TenantPolicy['expiry'];
  /** The hub's limits; none by default. */
  limits?: TenantPolicy['limits'];
  /** Per-tenant overrides of the hub's expiry policy and limits. */
  tenants?: Record<string, TenantPolicy>;
  /** Background sweeping: every `intervalMs`, in batches of `batchSize` (default 1,000). */
  sweep?: { intervalMs?: number; batchSize?: number };
  /** Called with any error of a background sweep (which then tries again next interval). */
  onSweepError?: (error: unknown) => void;
  /** Called after every sweep, background or not, with what it did. */
  onSweep?: (result: SweepResult) => void;
  /** Timer functions for the background sweep; tests inject their own. */
  timers?: Timers;
  /**
   * How turns run (hub.start, hub.send, hub.fork with a prompt): the data directory, the SDK
   * options per hub and tenant, retries, the warm pool. Without it those calls refuse.
   */
  runner?: RunnerOptions;
  /** Calls into the application as sessions start, take turns, expire and end. */
  hooks?: SessionHooks;
}

/** hub.fork's input when it also runs a turn on the new branch. */
export type ForkTurnInput = ForkInput & Omit<SendOptions, 'identity'> & { prompt: string };

export interface SessionPage {
  sessions: SessionRecord[];
  /** Pass back as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

export interface Lineage {
  /** Parent first, then its parent, up to the root or the first one not visible to the caller. */
  ancestors: SessionRecord[];
  /** Forks, forks of forks, …, breadth first with their depth (1 = a direct fork). */
  descendants: Array<{ depth: number; session: SessionRecord }>;
}

export interface HubStats {
  sessions: {
    total: number;
    byStatus: Record<SessionRecord['status'], number>;
    /** Past their deadline and not yet marked expired by a sweep. */
    dueToExpire: number;
    /** Past their retention and not yet purged. */
    dueToPurge: number;
  };
  usage: {
    fromDay: string;
    toDay: string;
    total: UsageFigures;
    byOwner: Array<UsageFigures & { owner: string }>;
    byDay: Array<UsageFigures & { day: string }>;
  };
}

export interface TurnAdmission {
  session: SessionRecord;
  /** What the turn may still spend under the cost limits (for the SDK's maxBudgetUsd). */
  maxBudgetUsd: number | undefined;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** Read-modify-write attempts before a call gives up with CONFLICT; each lost one means another writer got through. */
const UPDATE_ATTEMPTS = 50;
/** Sessions a lineage walk visits at most, so a huge family tree cannot stall a call. */
const MAX_LINEAGE = 1000;
/** How long the per-owner creation lease lives; creating a session takes far less. */
const OWNER_LEASE_MS = 10_000;
const OWNER_LEASE_ATTEMPTS = 200;

/**
 * The session hub: the lifecycle of sessions on one backend. Every call names the caller; a
 * session of another tenant, or of another owner for a user, behaves as if it did not exist.
 */
export class SessionHub {
  readonly backend: Backend;
  readonly clock: Clock;
  readonly policies: HubPolicies;
  /** This hub's name as a lease holder. */
  readonly instanceId = `hub-${randomUUID()}`;
  private readonly ownsBackend: boolean;
  private readonly sweeper: Sweeper;
  private readonly runner: Runner | null;
  private readonly hooks: SessionHooks | undefined;
  private closed = false;

  constructor(options: HubOptions) {
    this.backend = options.backend;
    this.clock = options.clock ?? systemClock;
    this.ownsBackend = options.ownsBackend ?? false;
    this.policies = new HubPolicies(options);
    this.hooks = options.hooks;
    this.sweeper = new Sweeper({
      registry: this.backend.registry,
      leases: this.backend.leases,
      clock: this.clock,
      holder: this.instanceId,
      batchSize: options.sweep?.batchSize,
      timers: options.timers,
      onError: options.onSweepError,
      onSweep: options.onSweep,
      onSwept: async (action, sessions) => {
        for (const session of sessions) {
          this.runner?.dropWarm(session.id);
          if (action === 'expired') {
            await callHook(this.hooks, 'onExpiry', { session, reason: 'swept' });
          } else {
            await callHook(this.hooks, 'onSessionEnd', { session, reason: 'purged' });
          }
        }
      },
    });
    if (options.sweep?.intervalMs !== undefined) this.sweeper.start(options.sweep.intervalMs);
    this.runner = options.runner ? new Runner(this.runnerHost(), options.runner) : null;
  }

  // ---- turns ----

  /** Creates a session and runs its first turn; iterate the turn for the SDK's messages. */
  start(options: StartOptions): Turn {
    return this.turnRunner().start(options);
  }

  /** Runs the session's next turn (one at a time per session, across every hub). */
  send(sessionId: string, prompt: string, options: SendOptions): Turn {
    return this.turnRunner().send(parseSessionId(sessionId), prompt, options);
  }

  /** Warm SDK processes this hub holds right now. */
  get warmSessions(): number {
    return this.runner?.warmSessions ?? 0;
  }

  /** Interrupts every turn running on this hub (for a shutdown); returns how many. */
  async interruptAll(): Promise<number> {
    return (await this.runner?.interruptAll()) ?? 0;
  }

  /** Turns running on this hub right now. */
  get runningTurns(): number {
    return this.runner?.runningTurns ?? 0;
  }

  /**
   * Interrupts the session's running turn; it ends as `interrupted` and stays resumable. A turn
   * on this hub stops at once. A turn on another hub of the backend gets a request that its
   * runner picks up within a fraction of a second. False when no turn runs on the session.
   */
  async interrupt(identity: Identity, sessionId: string): Promise<boolean> {
    const session = await this.visible(this.caller(identity), parseSessionId(sessionId));
    if (await this.runner?.interrupt(session.id)) return true;
    const turn = await this.backend.leases.current(
      sessionLeaseResource(session.tenant, session.id),
    );
    if (!turn) return false;
    // Addressed to the turn holding the lease now (its fence), so it never stops a later one.
    await this.backend.leases.acquire(
      interruptRequestResource(session.tenant, session.id, turn.fence),
      { holder: this.instanceId, ttlMs: INTERRUPT_REQUEST_MS },
    );
    return true;
  }

  // ---- creating and reading ----

  async create(identity: Identity, input: CreateInput = {}): Promise<SessionRecord> {
    const caller = this.caller(identity);
    const parsed = parseCreateInput(input);
    const owner = ownerFor(caller, parsed.owner);
    if (parsed.limits !== undefined) assertAdmin(caller, 'set limits on a session');
    const now = this.clock.now();
    const session: NewSession = {
      id: parsed.id ?? randomUUID(),
      tenant: caller.tenant,
      owner,
      title: parsed.title ?? null,
      tags: dedupe(parsed.tags ?? []),
      metadata: parsed.metadata ?? {},
      status: 'active',
      createdAt: now,
      lastActiveAt: now,
      expiresAt: null,
      expiredAt: null,
      purgeAt: null,
      extendedUntil: null,
      forkedFrom: null,
      expiry: parsed.expiry ?? {},
      limits: parsed.limits ?? {},
    };
    Object.assign(session, this.policies.deadlines(session));
    if (parsed.id !== undefined && caller.admin !== true) {
      // Registering adopts a transcript already stored under the id (how an admin imports an SDK
      // session). A user must not adopt one: it may have been written for someone else.
      const key = { projectKey: tenantProjectKey(caller.tenant), sessionId: session.id };
      if (
        (await this.backend.store.listSubkeys(key)).length > 0 ||
        (await this.backend.store.load(key))
      ) {
        throw sessionExists(session.id);
      }
    }
    const stored = await this.withOwnerSlot(caller.tenant, owner, () =>
      this.backend.registry.insert(session),
    );
    const record = this.present(stored);
    await callHook(this.hooks, 'onSessionStart', { session: record, reason: 'created' });
    return record;
  }

  async get(identity: Identity, sessionId: string): Promise<SessionRecord> {
    return this.present(await this.visible(this.caller(identity), parseSessionId(sessionId)));
  }

  /**
   * The session's main transcript as stored, oldest entry first ([] before its first turn). An
   * expired session's can still be read until it is purged.
   */
  async transcript(identity: Identity, sessionId: string): Promise<TranscriptEntry[]> {
    const session = await this.visible(this.caller(identity), parseSessionId(sessionId));
    const key = { projectKey: tenantProjectKey(session.tenant), sessionId: session.id };
    return (await this.backend.store.load(key)) ?? [];
  }

  async list(identity: Identity, query: unknown = {}): Promise<SessionPage> {
    const caller = this.caller(identity);
    const parsed = parseSessionQuery(query);
    const scope = visibleScope(caller);
    if (scope.owner !== undefined && parsed.owner !== undefined && parsed.owner !== scope.owner) {
      return { sessions: [], nextCursor: null };
    }
    const now = this.clock.now();
    const rows = await this.backend.registry.list(scope, parsed, now);
    const page = rows.slice(0, parsed.limit);
    const last = page.at(-1);
    return {
      sessions: page.map((row) => toRecord(row, this.policies, now)),
      nextCursor: rows.length > parsed.limit && last ? encodeCursor(last) : null,
    };
  }

  // ---- changing a record ----

  /**
   * Sets several fields in one compare-and-set: title, tags and metadata are replaced, expiry
   * overrides and limits (tenant admins only) are merged over the session's own.
   */
  async update(identity: Identity, sessionId: string, input: UpdateInput): Promise<SessionRecord> {
    const caller = this.caller(identity);
    const parsed = parseUpdateInput(input);
    if (parsed.limits !== undefined) assertAdmin(caller, "change a session's limits");
    return this.mutate(caller, sessionId, (session) => {
      const patch: SessionPatch = {};
      if (parsed.title !== undefined) patch.title = parsed.title;
      if (parsed.tags !== undefined) patch.tags = dedupe(parsed.tags);
      if (parsed.metadata !== undefined) patch.metadata = parsed.metadata;
      if (parsed.expiry) patch.expiry = { ...session.expiry, ...parsed.expiry };
      if (parsed.limits) patch.limits = { ...session.limits, ...parsed.limits };
      return Object.keys(patch).length === 0 ? null : patch;
    });
  }

  async rename(
    identity: Identity,
    sessionId: string,
    title: string | null,
  ): Promise<SessionRecord> {
    const parsed = parseTitle(title);
    return this.mutate(identity, sessionId, () => ({ title: parsed }));
  }

  async tag(
    identity: Identity,
    sessionId: string,
    tags: string | string[],
  ): Promise<SessionRecord> {
    const adding = parseTags(tags);
    return this.mutate(identity, sessionId, (session) => {
      const next = dedupe([...session.tags, ...adding]);
      if (next.length === session.tags.length) return null;
      parseTags(next);
      return { tags: next };
    });
  }

  async untag(
    identity: Identity,
    sessionId: string,
    tags: string | string[],
  ): Promise<SessionRecord> {
    const removing = new Set(parseTags(tags));
    return this.mutate(identity, sessionId, (session) => {
      const next = session.tags.filter((tag) => !removing.has(tag));
      return next.length === session.tags.length ? null : { tags: next };
    });
  }

  /** Replaces the session's metadata. */
  async setMetadata(
    identity: Identity,
    sessionId: string,
    metadata: Record<string, unknown>,
  ): Promise<SessionRecord> {
    const parsed = parseMetadata(metadata);
    return this.mutate(identity, sessionId, () => ({ metadata: parsed }));
  }

  /**
   * Sets the session's own expiry overrides and limits (limits: tenant admins only). Fields not
   * given keep their value; a field set to undefined is not a way to clear it: pass the hub's value.
   */
  async setOverrides(
    identity: Identity,
    sessionId: string,
    input: unknown,
  ): Promise<SessionRecord> {
    const caller = this.caller(identity);
    const parsed = parseOverridesInput(input);
    if (parsed.limits !== undefined) assertAdmin(caller, "change a session's limits");
    return this.mutate(caller, sessionId, (session) => {
      const patch: SessionPatch = {};
      if (parsed.expiry) patch.expiry = { ...session.expiry, ...parsed.expiry };
      if (parsed.limits) patch.limits = { ...session.limits, ...parsed.limits };
      return patch;
    });
  }

  /** Archived sessions never expire, and take no turns until unarchived. */
  async archive(identity: Identity, sessionId: string): Promise<SessionRecord> {
    return this.mutate(identity, sessionId, (session, now) => {
      if (session.status === 'archived') return null;
      this.assertNotExpired(session, now);
      return { status: 'archived' };
    });
  }

  /** Unarchiving counts as activity: the idle deadline starts again from now. */
  async unarchive(identity: Identity, sessionId: string): Promise<SessionRecord> {
    return this.mutate(identity, sessionId, (session, now) => {
      if (session.status !== 'archived') return null;
      return { status: 'active', lastActiveAt: now };
    });
  }

  /**
   * Pushes the session's deadline: by `byMs` from its current deadline (or from now, if that has
   * passed), or to `until`. An expired session not yet purged comes back to life.
   */
  async extend(identity: Identity, sessionId: string, input: ExtendInput): Promise<SessionRecord> {
    const parsed = parseExtendInput(input);
    return this.mutate(identity, sessionId, (session, now) => {
      const status = effectiveStatus(session, now);
      const from = status === 'expired' ? now : Math.max(now, session.expiresAt ?? now);
      const until = 'until' in parsed ? parsed.until : from + parsed.byMs;
      if (until <= now) {
        throw new SessionHubError(
          'INVALID_INPUT',
          `Cannot extend session ${session.id} to ${new Date(until).toISOString()}: that is not in the future.`,
          { sessionId: session.id, until, now },
        );
      }
      const patch: SessionPatch = { extendedUntil: until };
      if (status === 'expired') Object.assign(patch, { status: 'active', expiredAt: null });
      return patch;
    });
  }

  /** Expires the session now; it is purged once the retention in force has passed. */
  async expire(identity: Identity, sessionId: string): Promise<SessionRecord> {
    let changed = false;
    const record = await this.mutate(identity, sessionId, (session, now) => {
      if (effectiveStatus(session, now) === 'expired') return null;
      const policy = this.policies.expiryFor(session.tenant, session.expiry);
      changed = true;
      return {
        status: 'expired',
        expiresAt: now,
        expiredAt: now,
        purgeAt: now + policy.retentionMs,
      };
    });
    if (changed) {
      this.runner?.dropWarm(record.id);
      const session = { tenant: record.tenant, id: record.id };
      await callHook(this.hooks, 'onExpiry', { session, reason: 'expired' });
    }
    return record;
  }

  /** Deletes the record, the transcript and every subagent transcript. */
  async delete(identity: Identity, sessionId: string): Promise<void> {
    const caller = this.caller(identity);
    const session = await this.visible(caller, parseSessionId(sessionId));
    this.runner?.dropWarm(session.id);
    const removed = await this.backend.registry.remove(session.tenant, session.id);
    if (!removed) throw sessionNotFound(session.id);
    const ended = { tenant: session.tenant, id: session.id };
    await callHook(this.hooks, 'onSessionEnd', { session: ended, reason: 'deleted' });
  }

  // ---- forks ----

  /**
   * Forks a session at a message uuid or at its end, recording the lineage. With a `prompt`, it
   * returns a Turn that forks and then runs that prompt on the new branch.
   */
  fork(identity: Identity, sessionId: string, input?: ForkInput): Promise<SessionRecord>;
  fork(identity: Identity, sessionId: string, input: ForkTurnInput): Turn;
  fork(
    identity: Identity,
    sessionId: string,
    input: ForkInput | ForkTurnInput = {},
  ): Promise<SessionRecord> | Turn {
    if ('prompt' in input) {
      const { prompt, options, waitMs, ...fork } = input;
      return this.turnRunner().forkAndSend(parseSessionId(sessionId), prompt, {
        identity,
        options,
        waitMs,
        fork,
      });
    }
    return this.forkRecord(identity, sessionId, input);
  }

  /**
   * Forks a session through the SDK (its transcript up to `atMessageUuid`, or all of it) and
   * registers the fork with its lineage. The fork starts from the parent's usage figures, which
   * are not counted again; if registering fails, the fork's transcript is removed again.
   */
  private async forkRecord(
    identity: Identity,
    sessionId: string,
    input: ForkInput,
  ): Promise<SessionRecord> {
    const caller = this.caller(identity);
    const parsed = parseForkInput(input);
    const parent = await this.visible(caller, parseSessionId(sessionId));
    this.assertNotExpired(parent, this.clock.now());
    const projectKey = tenantProjectKey(parent.tenant);
    if ((await this.backend.store.load({ projectKey, sessionId: parent.id })) === null) {
      throw new SessionHubError(
        'INVALID_INPUT',
        `Session ${parent.id} has no messages yet, so there is nothing to fork. Run a turn first.`,
        { sessionId: parent.id },
      );
    }
    const title =
      parsed.title !== undefined
        ? parsed.title
        : parent.title && `${parent.title} (fork)`.slice(0, 200);
    return this.withOwnerSlot(parent.tenant, parent.owner, async () => {
      const sessionStore = this.transcriptStore({ tenant: parent.tenant, admin: true });
      let forkId: string;
      try {
        ({ sessionId: forkId } = await forkSession(parent.id, {
          sessionStore,
          upToMessageId: parsed.atMessageUuid,
          ...(title ? { title } : {}),
        }));
      } catch (error) {
        throw new SessionHubError(
          'INVALID_INPUT',
          `Cannot fork session ${parent.id}${parsed.atMessageUuid ? ` at message ${parsed.atMessageUuid}` : ''}: ${(error as Error).message}`,
          { sessionId: parent.id, atMessageUuid: parsed.atMessageUuid ?? null },
          { cause: error },
        );
      }
      const key = { projectKey, sessionId: forkId };
      try {
        const entries = (await this.backend.store.load(key)) ?? [];
        const now = this.clock.now();
        const fork: NewSession = {
          id: forkId,
          tenant: parent.tenant,
          owner: parent.owner,
          title,
          tags: parsed.tags ?? [...parent.tags],
          metadata: parsed.metadata ?? structuredClone(parent.metadata),
          status: 'active',
          createdAt: now,
          lastActiveAt: now,
          expiresAt: null,
          expiredAt: null,
          purgeAt: null,
          extendedUntil: null,
          forkedFrom: { sessionId: parent.id, messageUuid: parsed.atMessageUuid ?? null },
          expiry: { ...parent.expiry },
          limits: { ...parent.limits },
          usage: foldUsage(forkUsageState(parent.usage), entries).state,
        };
        Object.assign(fork, this.policies.deadlines(fork));
        return this.present(await this.backend.registry.insert(fork));
      } catch (error) {
        await this.backend.store.delete(key).catch(() => {});
        throw error;
      }
    }).then(async (record) => {
      await callHook(this.hooks, 'onSessionStart', { session: record, reason: 'forked' });
      return record;
    });
  }

  async lineage(identity: Identity, sessionId: string): Promise<Lineage> {
    const caller = this.caller(identity);
    const session = await this.visible(caller, parseSessionId(sessionId));
    const now = this.clock.now();
    const seen = new Set([session.id]);
    const ancestors: SessionRecord[] = [];
    let parentId = session.forkedFrom?.sessionId;
    while (parentId !== undefined && !seen.has(parentId) && seen.size < MAX_LINEAGE) {
      seen.add(parentId);
      const parent = await this.backend.registry.get(session.tenant, parentId);
      if (!parent || !canAccess(caller, parent)) break;
      ancestors.push(toRecord(parent, this.policies, now));
      parentId = parent.forkedFrom?.sessionId;
    }
    const descendants: Lineage['descendants'] = [];
    let level = [session.id];
    for (let depth = 1; level.length > 0 && seen.size < MAX_LINEAGE; depth++) {
      const next: string[] = [];
      for (const id of level) {
        for (const fork of await this.backend.registry.forksOf(session.tenant, id)) {
          if (seen.has(fork.id) || !canAccess(caller, fork)) continue;
          seen.add(fork.id);
          descendants.push({ depth, session: toRecord(fork, this.policies, now) });
          next.push(fork.id);
        }
      }
      level = next;
    }
    return { ancestors, descendants };
  }

  // ---- turns: admission, activity, leases ----

  /**
   * Whether a turn may run now: refused for an expired (SESSION_EXPIRED) or archived
   * (SESSION_ARCHIVED) session, or past a limit (LIMIT_EXCEEDED, naming it). Returns what the
   * turn may still spend.
   */
  async admitTurn(identity: Identity, sessionId: string): Promise<TurnAdmission> {
    const caller = this.caller(identity);
    const session = await this.visible(caller, parseSessionId(sessionId));
    const now = this.clock.now();
    this.assertNotExpired(session, now);
    if (session.status === 'archived') {
      throw new SessionHubError(
        'SESSION_ARCHIVED',
        `Session ${session.id} is archived. Unarchive it (hub.unarchive or POST /v1/sessions/${session.id}/unarchive) to continue it.`,
        { sessionId: session.id },
      );
    }
    const record = toRecord(session, this.policies, now);
    const limits = record.limits;
    checkLimit(limits, 'maxTurnsPerSession', record.usage.turns, 1);
    checkLimit(limits, 'maxCostPerSessionUsd', record.usage.costUsd);
    const ownerToday = await this.ownerCostToday(session.tenant, session.owner, limits, now);
    checkLimit(limits, 'maxCostPerOwnerPerDayUsd', ownerToday);
    return {
      session: record,
      maxBudgetUsd: remainingBudgetUsd(limits, record.usage.costUsd, ownerToday),
    };
  }

  /**
   * Records a turn's activity: last-active moves to now, and the idle deadline with it. A turn
   * that `failed` marks an active session failed; the next one that does not makes it active
   * again (a failed session takes turns, and expires, as an active one does).
   */
  async recordActivity(
    identity: Identity,
    sessionId: string,
    turn: { failed?: boolean } = {},
  ): Promise<SessionRecord> {
    return this.mutate(identity, sessionId, (session, now) => {
      this.assertNotExpired(session, now);
      const patch: SessionPatch = { lastActiveAt: Math.max(now, session.lastActiveAt) };
      if (turn.failed === true && session.status === 'active') patch.status = 'failed';
      if (turn.failed !== true && session.status === 'failed') patch.status = 'active';
      return patch;
    });
  }

  /**
   * Takes the session's lease: one holder at a time across every process on the backend. Throws
   * SESSION_BUSY while another holds it. Renew and release it through `hub.backend.leases`.
   */
  async acquireLease(
    identity: Identity,
    sessionId: string,
    options: { ttlMs: number; holder?: string },
  ): Promise<Lease> {
    const caller = this.caller(identity);
    const session = await this.visible(caller, parseSessionId(sessionId));
    const resource = sessionLeaseResource(session.tenant, session.id);
    const lease = await this.backend.leases.acquire(resource, {
      holder: options.holder ?? this.instanceId,
      ttlMs: options.ttlMs,
    });
    if (lease) return lease;
    const current = await this.backend.leases.current(resource);
    throw new SessionHubError(
      'SESSION_BUSY',
      `Session ${session.id} is running a turn elsewhere. Wait for it to finish, then try again.`,
      { sessionId: session.id, holder: current?.holder ?? null, until: current?.expiresAt ?? null },
    );
  }

  /** The tenant-scoped SDK SessionStore for this caller; pass it to query() or the SDK helpers. */
  transcriptStore(identity: Identity): TranscriptStore {
    const caller = this.caller(identity);
    return new TenantTranscriptStore(
      this.backend.store,
      this.backend.registry,
      caller,
      async (sessionId) => {
        const session = await this.backend.registry.get(caller.tenant, sessionId);
        if (!session || effectiveStatus(session, this.clock.now()) !== 'expired') return null;
        return session.expiredAt ?? session.expiresAt;
      },
    );
  }
  // ---- stats and sweeping ----

  async stats(identity: Identity, input: StatsInput = {}): Promise<HubStats> {
    const caller = this.caller(identity);
    const parsed = parseStatsInput(input);
    const now = this.clock.now();
    const toDay = parsed.toDay ?? utcDay(now);
    const fromDay = parsed.fromDay ?? utcDay(Date.parse(`${toDay}T00:00:00Z`) - 29 * DAY_MS);
    const scope = visibleScope(caller);
    const counts = await this.backend.registry.countByStatus(scope, now);
    const daily = await this.backend.registry.dailyUsage(scope, fromDay, toDay);
    return {
      sessions: {
        total: Object.values(counts.byStatus).reduce((sum, n) => sum + n, 0),
        byStatus: counts.byStatus,
        dueToExpire: counts.dueToExpire,
        dueToPurge: counts.dueToPurge,
      },
      usage: {
        fromDay,
        toDay,
        total: sumUsage(daily),
        byOwner: groupUsage(daily, 'owner').map(([owner, figures]) => ({ owner, ...figures })),
        byDay: groupUsage(daily, 'day').map(([day, figures]) => ({ day, ...figures })),
      },
    };
  }

  /**
   * Expires sessions past their deadline and purges those past their retention, in batches, on
   * every tenant. One hub at a time sweeps a backend (a lease); another that calls meanwhile gets
   * `ran: false`. Safe to repeat and to run from several processes.
   */
  sweep(options: SweepOptions = {}): Promise<SweepResult> {
    this.assertOpen();
    return this.sweeper.sweep(options);
  }

  /** Starts (or restarts) background sweeping every `intervalMs`. */
  startSweeping(intervalMs: number): void {
    this.assertOpen();
    this.sweeper.start(intervalMs);
  }

  stopSweeping(): void {
    this.sweeper.stop();
  }

  /** Stops background sweeping, waits for a sweep under way, and closes an owned backend. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.runner?.close();
    await this.sweeper.stopAndWait();
    if (this.ownsBackend) await this.backend.close();
  }

  // ---- internals ----

  private turnRunner(): Runner {
    this.assertOpen();
    if (!this.runner) {
      throw new SessionHubError(
        'INVALID_OPTION',
        'This hub runs no turns: create it with a `runner` option ({ dataDir, agent, ... }).',
        {},
      );
    }
    return this.runner;
  }

  private runnerHost(): RunnerHost {
    return {
      clock: this.clock,
      instanceId: this.instanceId,
      create: (identity, input) => this.create(identity, input),
      fork: (identity, sessionId, input) => this.forkRecord(identity, sessionId, input),
      get: (identity, sessionId) => this.get(identity, sessionId),
      admitTurn: (identity, sessionId) => this.admitTurn(identity, sessionId),
      acquireLease: (identity, sessionId, options) =>
        this.acquireLease(identity, sessionId, options),
      renewLease: (lease) => this.backend.leases.renew(lease),
      releaseLease: async (lease) => {
        await this.backend.leases.release(lease);
      },
      recordActivity: (identity, sessionId, turn) => this.recordActivity(identity, sessionId, turn),
      turnEnded: (outcome) => callHook(this.hooks, 'onTurnEnd', { outcome }),
      interruptRequested: async (tenant, sessionId, fence) =>
        (await this.backend.leases.current(interruptRequestResource(tenant, sessionId, fence))) !==
        null,
      transcriptStore: (identity) => this.transcriptStore(identity),
    };
  }

  private assertOpen(): void {
    if (this.closed) {
      throw new SessionHubError('CLOSED', 'This hub was closed; create a new one.', {});
    }
  }

  private caller(identity: Identity): Identity {
    this.assertOpen();
    return parseIdentity(identity);
  }

  private present(session: StoredSession): SessionRecord {
    return toRecord(session, this.policies, this.clock.now());
  }

  /** The stored session, if this caller may see it; SESSION_NOT_FOUND otherwise. */
  private async visible(caller: Identity, sessionId: string): Promise<StoredSession> {
    const session = await this.backend.registry.get(caller.tenant, sessionId);
    if (!session || !canAccess(caller, session)) throw sessionNotFound(sessionId);
    return session;
  }

  private assertNotExpired(session: StoredSession, now: number): void {
    if (effectiveStatus(session, now) === 'expired') {
      throw sessionExpired(session.id, session.expiredAt ?? session.expiresAt ?? now);
    }
  }

  /**
   * Read, change, compare-and-set, retrying when another writer got there first. `change` returns
   * the fields to set (deadlines are recomputed from them), or null for nothing to do.
   */
  private async mutate(
    identity: Identity,
    sessionId: string,
    change: (session: StoredSession, now: number) => SessionPatch | null,
  ): Promise<SessionRecord> {
    const caller = this.caller(identity);
    const id = parseSessionId(sessionId);
    for (let attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
      const session = await this.visible(caller, id);
      const now = this.clock.now();
      const patch = change(session, now);
      if (patch === null) return toRecord(session, this.policies, now);
      const next = { ...session, ...patch };
      if (next.status !== 'expired') Object.assign(patch, this.policies.deadlines(next));
      const written = await this.backend.registry.update(
        session.tenant,
        session.id,
        session.version,
        patch,
      );
      if (written) return toRecord(written, this.policies, now);
    }
    throw new SessionHubError(
      'CONFLICT',
      `Session ${id} kept changing while this call tried to update it; try again.`,
      { sessionId: id },
    );
  }

  private async ownerCostToday(
    tenant: string,
    owner: string,
    limits: Limits,
    now: number,
  ): Promise<number> {
    if (limits.maxCostPerOwnerPerDayUsd === null) return 0;
    const today = utcDay(now);
    const rows = await this.backend.registry.dailyUsage({ tenant, owner }, today, today);
    return sumUsage(rows).costUsd;
  }

  /**
   * Runs `task` (which adds a session for `owner`) within the per-owner session limit. With a
   * limit, creations for one owner take a lease so that concurrent ones, on any hub, count each
   * other and never pass the limit together.
   */
  private async withOwnerSlot<T>(
    tenant: string,
    owner: string,
    task: () => Promise<T>,
  ): Promise<T> {
    const limits = this.policies.limitsFor(tenant);
    if (limits.maxSessionsPerOwner === null) return task();
    const resource = `owner:${createHash('sha256').update(`${tenant}\u0000${owner}`).digest('hex')}`;
    let lease: Lease | null = null;
    for (let attempt = 0; !lease && attempt < OWNER_LEASE_ATTEMPTS; attempt++) {
      lease = await this.backend.leases.acquire(resource, {
        holder: this.instanceId,
        ttlMs: OWNER_LEASE_MS,
      });
      if (!lease) await delay(5 + Math.random() * 20);
    }
    if (!lease) {
      throw new SessionHubError(
        'CONFLICT',
        `Too many sessions are being created for ${owner} at once; try again.`,
        { owner },
      );
    }
    try {
      const owned = await this.backend.registry.countOwned(tenant, owner, [
        'active',
        'archived',
        'failed',
      ]);
      checkLimit(limits, 'maxSessionsPerOwner', owned, 1);
      return await task();
    } finally {
      await this.backend.leases.release(lease).catch(() => false);
    }
  }
}

/** Creates a hub on a backend the caller opened. */
export function createHub(options: HubOptions): SessionHub {
  return new SessionHub(options);
}

/** Opens the backend a URL names (default: SQLite in ./.sessionhub) and a hub that owns it. */
export async function openHub(
  url?: string,
  options: Omit<HubOptions, 'backend' | 'ownsBackend'> & Pick<OpenBackendOptions, 'foldUsage'> = {},
): Promise<SessionHub> {
  const backend = await openBackend(url, { clock: options.clock, foldUsage: options.foldUsage });
  return new SessionHub({ ...options, backend, ownsBackend: true });
}

/** The lease resource of a session's turns. */
export function sessionLeaseResource(tenant: string, sessionId: string): string {
  return `session:${tenant}/${sessionId}`;
}

/**
 * A request to interrupt the turn that holds a session's lease at `fence`, left by a hub that
 * does not run it: the runner that does looks for it while the turn runs.
 */
export function interruptRequestResource(tenant: string, sessionId: string, fence: number): string {
  return `interrupt:${tenant}/${sessionId}/${fence}`;
}

/** How long an interrupt request stands: longer than any runner takes to look. */
const INTERRUPT_REQUEST_MS = 60_000;

function ownerFor(caller: Identity, requested: string | undefined): string {
  if (caller.admin !== true) {
    if (requested !== undefined && requested !== caller.owner) {
      assertAdmin(caller, 'create a session for another owner');
    }
    return caller.owner;
  }
  const owner = requested ?? caller.owner;
  if (owner === undefined) {
    throw new SessionHubError(
      'INVALID_INPUT',
      'A tenant admin creating a session must say whose it is: pass { owner }.',
      {},
    );
  }
  return owner;
}

function assertAdmin(caller: Identity, what: string): void {
  if (caller.admin === true) return;
  throw new SessionHubError(
    'FORBIDDEN',
    `Only a tenant admin may ${what}. Ask an admin of tenant ${caller.tenant}.`,
    { tenant: caller.tenant },
  );
}

function dedupe(tags: string[]): string[] {
  return [...new Set(tags)];
}

function sumUsage(rows: DailyUsage[]): UsageFigures {
  const total = emptyUsageFigures();
  for (const row of rows) addToDailyUsage(total, row);
  return total;
}

function groupUsage(rows: DailyUsage[], by: 'owner' | 'day'): Array<[string, UsageFigures]> {
  const groups = new Map<string, UsageFigures>();
  for (const row of rows) {
    let figures = groups.get(row[by]);
    if (!figures) {
      figures = emptyUsageFigures();
      groups.set(row[by], figures);
    }
    addToDailyUsage(figures, row);
  }
  return [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
