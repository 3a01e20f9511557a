import type BetterSqlite3 from 'better-sqlite3';
import { type DailyUsage, fromCostNanos, toCostNanos } from '../../core/daily-usage.js';
import type { UsageDelta } from '../../core/usage.js';
import type { RegistryScope } from '../registry.js';

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

/** The `usage_daily` table: what each owner of a tenant spent per UTC day. */
export class SqliteDailyUsage {
  private readonly statements;

  constructor(db: BetterSqlite3.Database) {
    this.statements = {
      // One statement: a new day inserts, a known one adds. Integer sums need no read first.
      // Positional parameters: binding by name costs more, and every counted turn runs this.
      charge: db.prepare<[string, string, string, number, number, number, number, number, number]>(
        `INSERT INTO usage_daily (tenant, ${COLUMNS})
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (tenant, owner, day) DO UPDATE SET
           cost_nanos = cost_nanos + excluded.cost_nanos,
           input_tokens = input_tokens + excluded.input_tokens,
           output_tokens = output_tokens + excluded.output_tokens,
           cache_read_input_tokens = cache_read_input_tokens + excluded.cache_read_input_tokens,
           cache_creation_input_tokens =
             cache_creation_input_tokens + excluded.cache_creation_input_tokens,
           turns = turns + excluded.turns`,
      ),
      range: db.prepare<[string, string, string], DailyRow>(
        `SELECT ${COLUMNS} FROM usage_daily WHERE tenant = ? AND day >= ? AND day <= ?
         ORDER BY day, owner`,
      ),
      ownerRange: db.prepare<[string, string, string, string], DailyRow>(
        `SELECT ${COLUMNS} FROM usage_daily WHERE tenant = ? AND owner = ? AND day >= ? AND day <= ?
         ORDER BY day`,
      ),
    };
  }

  /**
   * Adds a fold's delta (a counted turn, see usage.ts) to the owner's day, inside the append's
   * write transaction. Costs are summed as whole nano-dollars, which gives exactly what
   * addToDailyUsage's rounding gives.
   */
  charge(tenant: string, owner: string, day: string, delta: UsageDelta): void {
    const { tokens } = delta;
    this.statements.charge.run(
      tenant,
      owner,
      day,
      toCostNanos(delta.costUsd),
      tokens.inputTokens,
      tokens.outputTokens,
      tokens.cacheReadInputTokens,
      tokens.cacheCreationInputTokens,
      delta.turns,
    );
  }

  /** Days in [fromDay, toDay], by day then owner. */
  read(scope: RegistryScope, fromDay: string, toDay: string): DailyUsage[] {
    const rows =
      scope.owner === undefined
        ? this.statements.range.all(scope.tenant, fromDay, toDay)
        : this.statements.ownerRange.all(scope.tenant, scope.owner, fromDay, toDay);
    return rows.map(rowToUsage);
  }
}
