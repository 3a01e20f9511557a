import { randomBytes } from 'node:crypto';
import { isLive, type SessionStatus } from '../../core/session-record.js';
import { parseSweepMember, sweepKeys, sweepMember } from './keys.js';
import { SWEEP_CLAIM, SWEEP_FINISH, SWEEP_HINT } from './registry-scripts.js';
import { type RedisClient, runScript } from './scripts.js';

/**
 * How long a sweeper's claim keeps other sweepers off a member. A sweeper that dies holding
 * claims only delays those sessions by this much.
 */
const CLAIM_MS = 60_000;

export type SweepKind = 'e' | 'p';

/** Where a session should sit in the sweep index: its deadline while live, its purge once expired. */
export interface SweepHint {
  tenant: string;
  id: string;
  /** Score for `expiring` (null: leave it alone). */
  expiring: number | null;
  /** Score for `purging` (null: leave it alone). */
  purging: number | null;
}

/** What a sweeper does with a member it claimed: remove it, or move it to its real due time. */
export interface SweepOutcome {
  member: string;
  score: number | null;
}

export interface Claimed {
  member: string;
  tenant: string;
  id: string;
}

/** The hints a record's due times call for, as the record stands. */
export function hintsOf(record: {
  tenant: string;
  id: string;
  status: SessionStatus;
  expiresAt: number | null;
  purgeAt: number | null;
}): SweepHint {
  return {
    tenant: record.tenant,
    id: record.id,
    expiring: isLive(record.status) ? record.expiresAt : null,
    purging: record.status === 'expired' ? record.purgeAt : null,
  };
}

function hintArgs(hints: readonly SweepHint[]): string[] {
  const args: string[] = [];
  for (const hint of hints) {
    if (hint.expiring === null && hint.purging === null) continue;
    args.push(
      sweepMember(hint.tenant, hint.id),
      hint.expiring === null ? '' : String(hint.expiring),
      hint.purging === null ? '' : String(hint.purging),
    );
  }
  return args;
}

/**
 * The sweep index (see registry-scripts.ts, SWEEP_HINT): a hint per session that may need a
 * sweeper, never later than the session's real due time. Writers lower or add hints before and
 * after they write a record; sweepers claim due members, ask each session's own script (the
 * arbiter), then remove or reschedule what they claimed.
 */
export class SweepIndex {
  private readonly keys: string[];

  constructor(
    private readonly client: RedisClient,
    prefix: string,
  ) {
    const keys = sweepKeys(prefix);
    this.keys = [keys.expiring, keys.purging, keys.claims];
  }

  async hint(hints: readonly SweepHint[]): Promise<void> {
    const args = hintArgs(hints);
    if (args.length > 0) await runScript(this.client, SWEEP_HINT, this.keys, args);
  }

  async claim(
    kind: SweepKind,
    now: number,
    limit: number,
  ): Promise<{ token: string; claimed: Claimed[] }> {
    const token = randomBytes(9).toString('base64url');
    const members = (await runScript(this.client, SWEEP_CLAIM, this.keys, [
      kind,
      now,
      limit,
      now + CLAIM_MS,
      token,
    ])) as string[];
    return {
      token,
      claimed: members.map((member) => ({ member, ...parseSweepMember(member) })),
    };
  }

  async finish(
    kind: SweepKind,
    token: string,
    outcomes: readonly SweepOutcome[],
    hints: readonly SweepHint[],
  ): Promise<void> {
    const args: string[] = [kind, token, String(outcomes.length)];
    for (const outcome of outcomes) {
      args.push(
        outcome.member,
        outcome.score === null ? 'r' : 's',
        outcome.score === null ? '' : String(outcome.score),
      );
    }
    args.push(...hintArgs(hints));
    if (outcomes.length > 0 || args.length > 3) {
      await runScript(this.client, SWEEP_FINISH, this.keys, args);
    }
  }
}
