import {
  type DailyUsage,
  emptyDailyUsage,
  fromCostNanos,
  toCostNanos,
} from '../../core/daily-usage.js';
import type { UsageDelta } from '../../core/usage.js';

/**
 * Daily usage on Redis, charged exactly once although the session (where the append folds usage)
 * and the tenant's daily figures live on different slots.
 *
 * - **Running charge.** Each registration of a session (its record's random `rid`) keeps its
 *   spend on the day of its latest counted turn in the session's meta, field `dc`: the stamp of
 *   the append that last changed it (its mtime: unique and increasing per session, across
 *   re-creations too), the day and six integer figures. A counted turn rewrites it in the same
 *   script and the same `HSET` as the usage state, so charging costs the session slot no
 *   command, and it is a total, never an increment: applying it twice changes nothing.
 * - **Spend.** The tenant's slot holds, per owner and day, one HASH of those totals by `rid`
 *   (`usage:spend:<owner>:<day>`), and per day the SET of owners that have one. Step 2 of an
 *   append (the publish, which runs anyway for the summary) sets the field when the running
 *   charge is newer (a higher stamp) than what is there: one `HGET` and one `HSET` per counted
 *   turn, in any order, from any number of callers, after any crash. A process publishes every
 *   running charge it has not itself published, so one a dying writer left is published by the
 *   next append to the session, from any process, or by its delete.
 * - **A past day.** A turn counted on another day starts a new running charge; the script sets
 *   the previous one aside as a pending record in the session's `charges` HASH (field = its
 *   stamp, value `s <rid JSON> <day> <figures>`), which every append returns until the process
 *   that published it has it forgotten. A delete waits for pending records and for the running
 *   charge to be published (see DELETE_SESSION): deleting never refunds.
 * - **Earlier versions** charged increments: pending records `<day> <figures>` in `charges`,
 *   added once (above the session's mark in `usage:charged` and its gone marker) with
 *   `HINCRBY`s to one HASH per day holding six fields per owner: `c:`, `t:`, `i:`, `o:`, `r:`,
 *   `w:` followed by the owner. Those HASHes are still read, and such records still applied, so
 *   stored figures and a charge an earlier writer left pending are never lost.
 *
 * Figures are cost in nano-dollars, turns, input, output, cache read and cache creation tokens:
 * integers, so sums are exact where float sums would drift (the fold rounds costs to 1e-9).
 */

/** Field prefixes of an earlier version's day HASH, in the order of a charge's figures. */
const FIGURES = ['c', 't', 'i', 'o', 'r', 'w'] as const;

/** A pending increment an earlier version left in a session's `charges` HASH. */
export interface Charge {
  stamp: string;
  day: string;
  /** Cost in nano-dollars, turns, input, output, cache read, cache creation tokens. */
  figures: string[];
}

/** A registration's total for one day, to publish to its owner's spend HASH of that day. */
export interface Spend {
  day: string;
  rid: string;
  /** The field's value: the stamp, then the six figures. */
  value: string;
}

/** What a session's `charges` HASH holds: earlier versions' increments and past days' totals. */
export interface Pending {
  charges: Charge[];
  spends: Spend[];
  /** Every record's stamp, to have them forgotten once published. */
  stamps: string[];
}

/** The stamp of a running charge's text. */
export function runningStamp(text: string): string {
  return text.slice(0, text.indexOf(' '));
}

/**
 * The running charge an append that counted `delta` on `day` leaves, without its stamp (the
 * script adds the append's): `<day> <six figures>`. `previous` is the session's as the fold
 * saw it (the usage token vouches for it), null if none: a total of the same day grows, another
 * day's is set aside by the script and a new one starts.
 */
export function nextRunning(previous: string | null, day: string, delta: UsageDelta): string {
  let cost = toCostNanos(delta.costUsd);
  let turns = delta.turns;
  let input = delta.tokens.inputTokens;
  let output = delta.tokens.outputTokens;
  let cacheRead = delta.tokens.cacheReadInputTokens;
  let cacheCreation = delta.tokens.cacheCreationInputTokens;
  // `<stamp> <day> <six figures>`: read in place, every counted turn runs this.
  const text = previous ?? '';
  const dayAt = text.indexOf(' ') + 1;
  if (dayAt > 0 && text.startsWith(day, dayAt) && text[dayAt + day.length] === ' ') {
    let at = dayAt + day.length + 1;
    const figure = (): number => {
      const end = text.indexOf(' ', at);
      const value = Number(end < 0 ? text.slice(at) : text.slice(at, end));
      at = end + 1;
      return value;
    };
    cost += figure();
    turns += figure();
    input += figure();
    output += figure();
    cacheRead += figure();
    cacheCreation += figure();
  }
  return `${day} ${cost} ${turns} ${input} ${output} ${cacheRead} ${cacheCreation}`;
}

/** What publishing a running charge of the registration `rid` sets. */
export function spendOfRunning(text: string, rid: string): Spend {
  const space = text.indexOf(' ');
  const next = text.indexOf(' ', space + 1);
  return {
    day: text.slice(space + 1, next),
    rid,
    value: `${text.slice(0, space)}${text.slice(next)}`,
  };
}

/** Pending records from a flat [stamp, payload, ...] reply; increments oldest first. */
export function parsePending(flat: readonly string[]): Pending {
  const pending: Pending = { charges: [], spends: [], stamps: [] };
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const stamp = flat[i] as string;
    const payload = flat[i + 1] as string;
    pending.stamps.push(stamp);
    if (payload.startsWith('s ')) {
      // s <rid JSON> <day> <figures>: a past day's running charge.
      const [, rid, day, ...figures] = payload.split(' ');
      pending.spends.push({
        day: day as string,
        rid: JSON.parse(rid as string) as string,
        value: `${stamp} ${figures.join(' ')}`,
      });
    } else {
      const [day, ...figures] = payload.split(' ');
      pending.charges.push({ stamp, day: day as string, figures });
    }
  }
  pending.charges.sort((a, b) => Number(a.stamp) - Number(b.stamp));
  return pending;
}

/** The fields of one owner's figures in an earlier version's day HASH, in Charge order. */
export function figureFields(owner: string): string[] {
  return FIGURES.map((figure) => `${figure}:${owner}`);
}

/**
 * One day's figures per owner, added up from what a read brings: an earlier version's day HASH
 * and the owners' spend HASHes. Sums are of integers (nano-dollars), converted once.
 */
export class DayFigures {
  private readonly byOwner = new Map<string, number[]>();

  constructor(readonly day: string) {}

  private of(owner: string): number[] {
    let figures = this.byOwner.get(owner);
    if (!figures) {
      figures = [0, 0, 0, 0, 0, 0];
      this.byOwner.set(owner, figures);
    }
    return figures;
  }

  /** An earlier version's whole day HASH (HGETALL, flat field, value list). */
  addLegacyDay(flat: readonly string[]): void {
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const field = flat[i] as string;
      const index = FIGURES.indexOf(field[0] as (typeof FIGURES)[number]);
      if (index < 0 || field[1] !== ':') continue;
      const figures = this.of(field.slice(2));
      figures[index] = (figures[index] as number) + Number(flat[i + 1]);
    }
  }

  /** One owner's fields of an earlier version's day HASH (HMGET of figureFields(owner)). */
  addLegacyOwner(owner: string, values: ReadonlyArray<string | null>): void {
    if (values.every((value) => value === null)) return;
    const figures = this.of(owner);
    for (let i = 0; i < FIGURES.length; i++) {
      figures[i] = (figures[i] as number) + Number(values[i] ?? 0);
    }
  }

  /** The values of one owner's spend HASH of the day (HVALS): `<stamp> <six figures>` each. */
  addSpends(owner: string, values: readonly string[]): void {
    if (values.length === 0) return;
    const figures = this.of(owner);
    for (const value of values) {
      const parts = value.split(' ');
      for (let i = 0; i < FIGURES.length; i++) {
        figures[i] = (figures[i] as number) + Number(parts[i + 1] ?? 0);
      }
    }
  }

  rows(): DailyUsage[] {
    const rows: DailyUsage[] = [];
    for (const [owner, [cost, turns, input, output, cacheRead, cacheCreation]] of this.byOwner) {
      const row = emptyDailyUsage(owner, this.day);
      row.costUsd = fromCostNanos(cost as number);
      row.turns = turns as number;
      row.tokens = {
        inputTokens: input as number,
        outputTokens: output as number,
        cacheReadInputTokens: cacheRead as number,
        cacheCreationInputTokens: cacheCreation as number,
      };
      rows.push(row);
    }
    return rows;
  }
}
