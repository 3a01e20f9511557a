import type BetterSqlite3 from 'better-sqlite3';
import { type DailyUsage, fromCostNanos, toCostNanos } from '../../core/daily-usage.js';
import type { UsageDelta } from '../../core/usage.js';
import type { RegistryScope } from '../registry.js';

/**
 * What each owner of a tenant spent per UTC day, in two places (migration 6):
 *
 * - the `usage_daily` table, one row per tenant, owner and day;
 * - the running charge of each registered session: its owner's spend on the day of its last
 *   counted turn (`charge_day`), in the `charge_*` columns of the session's own row.
 *
 * A counted turn adds to its session's running charge, in the row every append rewrites anyway,
 * so charging costs no statement and dirties no page of its own. The running charge moves into
 * `usage_daily` when a turn is counted on another day, and when the session is deleted or purged
 * (spend is never refunded). A day's figures are the sum of both places.
 */

interface DailyRow {
  owner: string;
  day: string;
  cost_nanos: number;
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens: number;
  cache_creation_input_tokens: number;
  turns: number;
}

const COLUMNS = `owner, day, cost_nanos, input_tokens, output_tokens, cache_read_input_tokens,
  cache_creation_input_tokens, turns`;

/** The same figures of a session row's running charge, in COLUMNS order. */
const RUNNING_COLUMNS = `owner, charge_day, charge_cost_nanos, charge_input_tokens,
  charge_output_tokens, charge_cache_read_input_tokens, charge_cache_creation_input_tokens,
  charge_turns`;

/** The running-charge columns a charge's figures (chargeFigures()) bind to, in that order. */
const FIGURE_COLUMNS = [
  'charge_cost_nanos',
  'charge_input_tokens',
  'charge_output_tokens',
  'charge_cache_read_input_tokens',
  'charge_cache_creation_input_tokens',
  'charge_turns',
];

/**
 * SET assignments that add a charge's figures (six parameters) to the row's running charge,
 * for an append counting a turn on the running charge's own day.
 */
export const ADD_TO_RUNNING_CHARGE = FIGURE_COLUMNS.map((c) => `${c} = ${c} + ?`).join(', ');

/**
 * SET assignments that start a running charge: its day, then a charge's figures (seven
 * parameters). Flush the previous one first (SqliteDailyUsage.flushRunning).
 */
export const START_RUNNING_CHARGE = ['charge_day', ...FIGURE_COLUMNS]
  .map((c) => `${c} = ?`)
  .join(', ');

/** A fold's delta as the six figures the SET assignments above bind. */
export function chargeFigures(delta: UsageDelta): [number, number, number, number, number, number] {
  const { tokens } = delta;
  return [
    toCostNanos(delta.costUsd),
    tokens.inputTokens,
    tokens.outputTokens,
    tokens.cacheReadInputTokens,
    tokens.cacheCreationInputTokens,
    delta.turns,
  ];
}

/** Adds an inserted row's figures to the day's, as an upsert does on conflict. */
const ADD_ON_CONFLICT = `ON CONFLICT (tenant, owner, day) DO UPDATE SET
  cost_nanos = cost_nanos + excluded.cost_nanos,
  input_tokens = input_tokens + excluded.input_tokens,
  output_tokens = output_tokens + excluded.output_tokens,
  cache_read_input_tokens = cache_read_input_tokens + excluded.cache_read_input_tokens,
  cache_creation_input_tokens = cache_creation_input_tokens + excluded.cache_creation_input_tokens,
  turns = turns + excluded.turns`;

/** Both places of a tenant's (or one owner's) days, summed per day and owner. */
function readSql(ofOwner: boolean): string {
  const owner = ofOwner ? ' AND owner = @owner' : '';
  return `SELECT owner, day, SUM(cost_nanos) AS cost_nanos, SUM(input_tokens) AS input_tokens,
      SUM(output_tokens) AS output_tokens, SUM(cache_read_input_tokens) AS cache_read_input_tokens,
      SUM(cache_creation_input_tokens) AS cache_creation_input_tokens, SUM(turns) AS turns
    FROM (
      SELECT ${COLUMNS} FROM usage_daily
      WHERE tenant = @tenant${owner} AND day >= @from AND day <= @to
      UNION ALL
      SELECT ${RUNNING_COLUMNS} FROM transcript_sessions
      WHERE tenant = @tenant${owner} AND charge_day >= @from AND charge_day <= @to
    )
    GROUP BY day, owner
    ORDER BY day, owner`;
}

function rowToUsage(row: DailyRow): DailyUsage {
  return {
    owner: row.owner,
    day: row.day,
    costUsd: fromCostNanos(row.cost_nanos),
    tokens: {
      inputTokens: row.input_tokens,
      outputTokens: row.output_tokens,
      cacheReadInputTokens: row.cache_read_input_tokens,
      cacheCreationInputTokens: row.cache_creation_input_tokens,
    },
    turns: row.turns,
  };
}

interface ReadParams {
  tenant: string;
  owner?: string;
  from: string;
  to: string;
}

/** Daily usage: `usage_daily` and the sessions' running charges (see above). */
export class SqliteDailyUsage {
  private readonly statements;

  constructor(db: BetterSqlite3.Database) {
    this.statements = {
      // INSERT … SELECT of the rows' running charges: one statement whatever the number of rows,
      // and rows of one owner and day (a purge batch) add up through the conflict clause.
      flushOne: db.prepare<[number]>(
        `INSERT INTO usage_daily (tenant, ${COLUMNS})
         SELECT tenant, ${RUNNING_COLUMNS} FROM transcript_sessions
         WHERE id = ? AND charge_day IS NOT NULL AND tenant IS NOT NULL
         ${ADD_ON_CONFLICT}`,
      ),
      flushMany: db.prepare<[string]>(
        `INSERT INTO usage_daily (tenant, ${COLUMNS})
         SELECT tenant, ${RUNNING_COLUMNS} FROM transcript_sessions
         WHERE id IN (SELECT value FROM json_each(?)) AND charge_day IS NOT NULL
           AND tenant IS NOT NULL
         ${ADD_ON_CONFLICT}`,
      ),
      range: db.prepare<ReadParams, DailyRow>(readSql(false)),
      ownerRange: db.prepare<ReadParams, DailyRow>(readSql(true)),
    };
  }

  /**
   * Adds the running charge of the session row `rowId` (if it has one) to `usage_daily`. The
   * caller then starts a new running charge in the row, or deletes the row, in the same write
   * transaction: a flushed charge left in place would count twice.
   */
  flushRunning(rowId: number): void {
    this.statements.flushOne.run(rowId);
  }

  /** flushRunning() for many rows at once (a purge batch): `rowIds` is a JSON array. */
  flushRunningOf(rowIds: string): void {
    this.statements.flushMany.run(rowIds);
  }

  /** Days in [fromDay, toDay], by day then owner. */
  read(scope: RegistryScope, fromDay: string, toDay: string): DailyUsage[] {
    const rows =
      scope.owner === undefined
        ? this.statements.range.all({ tenant: scope.tenant, from: fromDay, to: toDay })
        : this.statements.ownerRange.all({
            tenant: scope.tenant,
            owner: scope.owner,
            from: fromDay,
            to: toDay,
          });
    return rows.map(rowToUsage);
  }
}
