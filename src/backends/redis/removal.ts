import { SessionHubError } from '../../core/errors.js';
import { parsePending, runningStamp, spendOfRunning } from './charges.js';
import { projectKeys, sessionKeys, sweepKeys, sweepMember } from './keys.js';
import type { SummaryPublisher } from './publisher.js';
import { SWEEP_FORGET } from './registry-scripts.js';
import { DELETE_SESSION, type RedisClient, runScript, UNLIST_SESSIONS } from './scripts.js';

/**
 * How long a deleted session keeps its floor and gone marker. It bounds how late an append that
 * raced the delete may publish and still be refused; a day is far beyond any real pause.
 */
export const DELETE_FENCE_MS = 24 * 60 * 60 * 1000;

/** Rounds of "publish the daily usage, then delete" before giving up (appends keep racing). */
const MAX_ROUNDS = 16;

export type RemoveMode =
  /** The store's delete: whatever is there, record or not. */
  | { mode: 'any' }
  /** The registry's remove: only a registered session. */
  | { mode: 'record' }
  /** The sweeper's purge: only an expired session whose purgeAt is at or before `now`. */
  | { mode: 'purge'; now: number };

export type RemoveResult =
  | { removed: true }
  /** Nothing deleted: no record, or (purge) not due; the stored fields as JSON, for the sweeper. */
  | { removed: false; status: string | null; expiresAt: string | null; purgeAt: string | null };

export interface SessionRef {
  projectKey: string;
  sessionId: string;
}

interface Deleted extends SessionRef {
  existed: boolean;
  stamp: number;
  rid: string;
  tenant: string | null;
}

/**
 * Deletes whole sessions: transcripts and record (their daily usage published first, since
 * deleting never refunds), their project listing, their registration in the tenant's list
 * indexes and their place in the sweep index. Three slots, so three steps; each session's own
 * script decides (whether it existed, whether it is due), the other two follow and are
 * idempotent, so deleting again repairs a delete that stopped half way. Many sessions at once
 * (a purge batch) share the second and third steps: one call per project, one for the sweep
 * index.
 *
 * A delete leaves the store's fence (meta holding `floor`, and the gone marker, both for
 * DELETE_FENCE_MS) so that an append racing it can neither list the session again nor count
 * its charges twice. A purge leaves nothing: the session has been expired for its whole
 * retention, and the hub takes no turns on an expired session.
 */
export class SessionRemover {
  constructor(
    private readonly client: RedisClient,
    private readonly prefix: string,
    private readonly publisher: SummaryPublisher,
    /**
     * Told which session goes: returns the stamps of its pending records and running charge
     * this process knows are published, and drops what is cached about it.
     */
    private readonly forget: (meta: string) => string[],
  ) {}

  async remove(projectKey: string, sessionId: string, how: RemoveMode): Promise<RemoveResult> {
    const [result] = await this.removeMany([{ projectKey, sessionId }], how);
    return result as RemoveResult;
  }

  /** Removes each session (see RemoveMode); results in the order given. */
  async removeMany(sessions: readonly SessionRef[], how: RemoveMode): Promise<RemoveResult[]> {
    const results: RemoveResult[] = [];
    const deleted: Deleted[] = [];
    await Promise.all(
      sessions.map(async (ref, i) => {
        const outcome = await this.deleteOne(ref, how);
        if ('stamp' in outcome) {
          deleted.push(outcome);
          results[i] = { removed: true };
        } else {
          results[i] = outcome;
        }
      }),
    );
    const byProject = new Map<string, Deleted[]>();
    for (const item of deleted) {
      const list = byProject.get(item.projectKey) ?? [];
      list.push(item);
      byProject.set(item.projectKey, list);
    }
    const steps: Array<Promise<unknown>> = [];
    for (const [projectKey, items] of byProject) {
      const project = projectKeys(this.prefix, projectKey);
      const keys = [
        project.sessions,
        project.summaries,
        project.registered,
        project.listAll,
        project.charged,
      ];
      const args: Array<string | number> = [DELETE_FENCE_MS];
      for (const item of items) {
        keys.push(project.gone(item.sessionId));
        args.push(
          item.sessionId,
          item.stamp,
          item.existed && how.mode !== 'purge' ? '1' : '0',
          item.rid,
        );
      }
      steps.push(runScript(this.client, UNLIST_SESSIONS, keys, args));
    }
    const members = deleted.flatMap((item) =>
      item.tenant === null ? [] : [sweepMember(item.tenant, item.sessionId)],
    );
    if (members.length > 0) {
      const sweep = sweepKeys(this.prefix);
      steps.push(
        runScript(
          this.client,
          SWEEP_FORGET,
          [sweep.expiring, sweep.purging, sweep.claims],
          members,
        ),
      );
    }
    await Promise.all(steps);
    return results;
  }

  /** Step 1 for one session, publishing its daily usage first when the session says so. */
  private async deleteOne(
    ref: SessionRef,
    how: RemoveMode,
  ): Promise<Deleted | Exclude<RemoveResult, { removed: true }>> {
    const keys = sessionKeys(this.prefix, ref.projectKey, ref.sessionId);
    let applied = this.forget(keys.meta);
    for (let round = 1; round <= MAX_ROUNDS; round++) {
      const reply = (await runScript(
        this.client,
        DELETE_SESSION,
        [keys.meta, keys.main.list, keys.main.ids, keys.subkeys, keys.charges],
        [DELETE_FENCE_MS, how.mode, how.mode === 'purge' ? how.now : '', ...applied],
      )) as Array<string | number | null>;
      if (reply[0] === 2) {
        // Spend not known to be in daily usage: publish it (it counts once), then delete.
        const [, owner, rid, running] = reply as [2, string, string, string];
        const pending = parsePending(reply.slice(4) as string[]);
        const spends = pending.spends;
        if (running !== '' && rid !== '') spends.push(spendOfRunning(running, JSON.parse(rid)));
        await this.publisher.publish(ref.projectKey, {
          sessionId: ref.sessionId,
          mtime: 0,
          json: null,
          owner: owner ? (JSON.parse(owner) as string) : '',
          charges: pending.charges,
          spends,
        });
        applied = running === '' ? pending.stamps : [...pending.stamps, runningStamp(running)];
        continue;
      }
      if (reply[0] === 0) {
        const [, status, expiresAt, purgeAt] = reply as [0, string?, string?, string?];
        return {
          removed: false,
          status: status ?? null,
          expiresAt: expiresAt ?? null,
          purgeAt: purgeAt ?? null,
        };
      }
      const [, existed, stamp, rid, tenant] = reply as [1, number, number, string?, string?];
      return {
        ...ref,
        existed: existed === 1,
        stamp,
        rid: rid ? (JSON.parse(rid) as string) : '',
        tenant: tenant ? (JSON.parse(tenant) as string) : null,
      };
    }
    throw new SessionHubError(
      'CONFLICT',
      `Session ${ref.sessionId} kept receiving appends while it was being deleted. Delete it again.`,
      { sessionId: ref.sessionId },
    );
  }
}
