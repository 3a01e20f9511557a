import { prepared, quoteIdentifier, type Statement } from './sql.js';

/** Milliseconds since the epoch on the database clock, floored as the SDK asks. */
const NOW_MS = 'floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint';

/**
 * Batches up to this size send each entry as its own parameter. Entries are JSON, full of quotes
 * and backslashes that a text[] parameter would escape on the way out and parse on the way in;
 * measured on loopback, that made a two-entry insert about 60% slower. Larger batches (imports)
 * send two arrays.
 */
const SEPARATE_PARAMETERS_UP_TO = 64;

/** One entry of an append as sent: its stored uuid (null = always append) and its JSON text. */
export interface BatchRow {
  uuid: string | null;
  line: string;
}

/** How a batch appears in SQL when its parameters start at `$first`. */
interface BatchSql {
  /** A CTE body yielding (uuid, entry, ord), ord counting from 1. */
  rows: string;
  /** The number of entries. */
  count: string;
}

/**
 * The entry slots of the statement that carries a batch of `size`: a power of two, the unused
 * slots sent as NULL, so that a connection prepares at most eight shapes of each statement
 * instead of one per batch size. 0 stands for the array form.
 */
function slotsFor(size: number): number {
  if (size > SEPARATE_PARAMETERS_UP_TO) return 0;
  let slots = 1;
  while (slots < size) slots *= 2;
  return slots;
}

/** Parameters from `$first`: the entry count, then the slots (or the two arrays). */
function batchSql(first: number, slots: number): BatchSql {
  const count = `$${first}::int`;
  if (slots === 0) {
    return {
      rows: `SELECT b.uuid, b.entry, b.ord FROM unnest($${first + 1}::text[], $${first + 2}::text[]) WITH ORDINALITY AS b (uuid, entry, ord)`,
      count,
    };
  }
  const values: string[] = [];
  for (let i = 0; i < slots; i++) {
    values.push(`($${first + 1 + 2 * i}::text, $${first + 2 + 2 * i}::text, ${i + 1}::bigint)`);
  }
  return {
    rows: `SELECT * FROM (VALUES ${values.join(', ')}) AS b (uuid, entry, ord) WHERE b.entry IS NOT NULL`,
    count,
  };
}

/** The parameters that carry a batch, in the layout batchSql() expects. */
export function batchParameters(rows: BatchRow[]): unknown[] {
  const slots = slotsFor(rows.length);
  if (slots === 0) return [rows.length, rows.map((r) => r.uuid), rows.map((r) => r.line)];
  const values: unknown[] = [rows.length];
  for (const row of rows) values.push(row.uuid, row.line);
  for (let i = rows.length; i < slots; i++) values.push(null, null);
  return values;
}

/** A fold's delta as one day's usage row takes it: cost in whole nano-USD. */
export interface UsageCharge {
  day: string;
  costNanos: number;
  turns: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheCreationTokens: number;
}

/**
 * What a main-transcript statement writes of usage: nothing (the batch cannot move it, or folding
 * is off), the folded state, or the state and a charge to the owner's day. Most folds charge
 * nothing (only a counted turn does), and their statement has no daily-usage part at all.
 */
export type UsageWrite = 'none' | 'state' | 'charge';

const USAGE_WRITES: readonly UsageWrite[] = ['none', 'state', 'charge'];

/** The usage parameters of appendMain(size, 'state' or 'charge'): the state, then the charge. */
export function usageParameters(usage: string | null, charge: UsageCharge | null): unknown[] {
  if (charge === null) return [usage];
  return [
    usage,
    charge.day,
    charge.costNanos,
    charge.turns,
    charge.inputTokens,
    charge.outputTokens,
    charge.cacheReadTokens,
    charge.cacheCreationTokens,
  ];
}

/** A session row as the main-transcript statements return it (bigints as decimal text). */
export interface SessionStateRow {
  id: string;
  version: string;
  summary: string | null;
  /** JSON text of the usage fold's state; null = nothing folded yet. */
  usage_state: string | null;
  /** From mainState only: the batch's uuids already stored. */
  duplicates?: string[];
}

/** Adds an append's charge to the owner's day (the row being inserted is `excluded`). */
const ADD_TO_DAY = `ON CONFLICT (tenant, owner, day) DO UPDATE SET
          cost_nanos = d.cost_nanos + excluded.cost_nanos,
          turns = d.turns + excluded.turns,
          input_tokens = d.input_tokens + excluded.input_tokens,
          output_tokens = d.output_tokens + excluded.output_tokens,
          cache_read_tokens = d.cache_read_tokens + excluded.cache_read_tokens,
          cache_creation_tokens = d.cache_creation_tokens + excluded.cache_creation_tokens`;

/**
 * The group statement (see TranscriptStatements.appendGroup). With usage it takes, beside $1-$10:
 *   $11 each session's folded usage state, newline-separated ('' = unchanged);
 * and with charges too:
 *   $12 the day to charge (null: nothing), $13 cost in nanos, $14 turns, $15-$18 tokens.
 * Charges are summed per (tenant, owner, day) first, because one INSERT … ON CONFLICT cannot
 * touch a row twice, and written in key order, so two groups never wait on each other's days.
 */
function groupStatement(
  sessions: string,
  entries: string,
  daily: string,
  usage: UsageWrite,
): Statement {
  const withUsage = usage !== 'none';
  const withCharge = usage === 'charge';
  const usageColumns = withCharge
    ? `,
          string_to_array($11::text, E'\\n'), $12::text[], $13::bigint[], $14::bigint[],
          $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[]`
    : withUsage
      ? `,
          string_to_array($11::text, E'\\n')`
      : '';
  const usageNames = withCharge
    ? ', usage, day, cost, turns, input, output, cache_read, cache_creation'
    : withUsage
      ? ', usage'
      : '';
  return prepared(`
      WITH s AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
          string_to_array($6::text, E'\\n')${usageColumns})
          WITH ORDINALITY AS s (project_key, session_id, version, id, n, summary${usageNames}, k)
      ),
      batch AS (
        SELECT * FROM unnest($7::bigint[], $8::bigint[], $9::text[],
          string_to_array($10::text, E'\\n')) AS b (k, ord, uuid, entry)
      ),
      duplicates AS (
        SELECT DISTINCT b.k FROM batch b
        JOIN s ON s.k = b.k
        CROSS JOIN LATERAL (
          SELECT e.uuid FROM ${entries} e
          WHERE e.session_ref = s.id AND e.subpath = '' AND e.uuid = b.uuid
          LIMIT 1
        ) AS found
      ),
      updated AS (
        UPDATE ${sessions} AS t SET
          next_seq = t.next_seq + s.n,
          version = DEFAULT,
          mtime = GREATEST(${NOW_MS}, t.mtime + 1),
          summary = s.summary${
            withUsage
              ? `,
          usage_state = COALESCE(NULLIF(s.usage, ''), t.usage_state)`
              : ''
          }
        FROM s
        WHERE t.id = s.id AND t.version = s.version
          AND NOT EXISTS (SELECT FROM duplicates d WHERE d.k = s.k)
        RETURNING s.k, t.id, t.next_seq - s.n AS first_seq, t.version, t.tenant, t.owner
      ),
      inserted_sessions AS (
        INSERT INTO ${sessions} (project_key, session_id, next_seq, mtime, summary${withUsage ? ', usage_state' : ''})
        SELECT s.project_key, s.session_id, s.n, ${NOW_MS}, s.summary${withUsage ? `, NULLIF(s.usage, '')` : ''} FROM s
        WHERE s.version = 0 AND NOT EXISTS (SELECT FROM updated u WHERE u.k = s.k)
        ORDER BY s.k
        ON CONFLICT (project_key, session_id) DO NOTHING
        RETURNING project_key, session_id, id, version, tenant, owner
      ),
      claimed AS (
        SELECT * FROM updated
        UNION ALL
        SELECT s.k, i.id, 0::bigint AS first_seq, i.version, i.tenant, i.owner
        FROM inserted_sessions i
        JOIN s ON s.project_key = i.project_key AND s.session_id = i.session_id
      ),
      inserted AS (
        -- No ON CONFLICT, as in appendMain: an unforeseen duplicate fails the statement, and the
        -- caller then retries each session on its own.
        INSERT INTO ${entries} (session_ref, subpath, seq, uuid, entry)
        SELECT c.id, '', c.first_seq + b.ord - 1, b.uuid, b.entry
        FROM claimed c JOIN batch b ON b.k = c.k
      )${
        withCharge
          ? `,
      charges AS (
        SELECT c.tenant, c.owner, s.day, sum(s.cost)::bigint AS cost, sum(s.turns)::bigint AS turns,
          sum(s.input)::bigint AS input, sum(s.output)::bigint AS output,
          sum(s.cache_read)::bigint AS cache_read, sum(s.cache_creation)::bigint AS cache_creation
        FROM claimed c JOIN s ON s.k = c.k
        WHERE c.tenant IS NOT NULL AND s.day IS NOT NULL
        GROUP BY c.tenant, c.owner, s.day
      ),
      charged AS (
        INSERT INTO ${daily} AS d (tenant, owner, day, cost_nanos, turns, input_tokens,
          output_tokens, cache_read_tokens, cache_creation_tokens)
        SELECT * FROM charges ORDER BY tenant, owner, day
        ${ADD_TO_DAY}
      )`
          : ''
      }
      SELECT k, id, version FROM claimed`);
}

/** Every statement the transcript store runs, for one schema. */
export class TranscriptStatements {
  /** Qualified table names, for the statements built lazily per batch shape. */
  readonly sessions: string;
  readonly entries: string;
  readonly daily: string;
  /** appendMain() by what it writes of usage, then by entry slots. */
  private readonly mainBySlots = new Map<UsageWrite, Map<number, Statement>>(
    USAGE_WRITES.map((usage) => [usage, new Map()]),
  );
  private readonly subpathBySlots = new Map<number, Statement>();

  readonly lockSession: Statement;
  readonly mainState: Statement;
  readonly load: Statement;
  readonly listSessions: Statement;
  readonly listSummaries: Statement;
  readonly listSubkeys: Statement;
  readonly lockForDelete: Statement;
  readonly deleteSession: Statement;
  readonly deleteSubpath: Statement;

  constructor(schema: string) {
    const s = quoteIdentifier(schema);
    const sessions = `${s}.transcript_sessions`;
    const entries = `${s}.transcript_entries`;
    const daily = `${s}.usage_daily`;
    this.sessions = sessions;
    this.entries = entries;
    this.daily = daily;

    /** Takes the session's row lock until the transaction ends, creating the row if need be. */
    this.lockSession = prepared(`
      INSERT INTO ${sessions} AS t (project_key, session_id, version) VALUES ($1, $2, 0)
      ON CONFLICT (project_key, session_id) DO UPDATE SET next_seq = t.next_seq`);

    /**
     * What a main-transcript append needs to fold again: the session row as it is now, and which
     * of the batch's uuids ($3, a text[]) it already holds. No row: the session does not exist.
     */
    this.mainState = prepared(`
      SELECT s.id, s.version, s.summary, s.usage_state, ARRAY (
        SELECT found.uuid FROM unnest($3::text[]) AS b (uuid)
        CROSS JOIN LATERAL (
          SELECT e.uuid FROM ${entries} e
          WHERE e.session_ref = s.id AND e.subpath = '' AND e.uuid = b.uuid
          LIMIT 1
        ) AS found
      ) AS duplicates
      FROM ${sessions} s WHERE s.project_key = $1 AND s.session_id = $2`);

    this.load = prepared(`
      SELECT e.entry FROM ${entries} e
      WHERE e.session_ref = (
        SELECT id FROM ${sessions} WHERE project_key = $1 AND session_id = $2
      ) AND e.subpath = $3
      ORDER BY e.seq`);

    this.listSessions = prepared(`
      SELECT session_id, mtime FROM ${sessions}
      WHERE project_key = $1 AND mtime IS NOT NULL
      ORDER BY session_id`);

    this.listSummaries = prepared(`
      SELECT session_id, mtime, summary FROM ${sessions}
      WHERE project_key = $1 AND summary IS NOT NULL
      ORDER BY session_id`);

    // Hops from one distinct subpath to the next through the primary key instead of reading
    // every entry of the session.
    this.listSubkeys = prepared(`
      WITH RECURSIVE session AS (
        SELECT id FROM ${sessions} WHERE project_key = $1 AND session_id = $2
      ),
      subpaths (subpath) AS (
        SELECT (SELECT min(e.subpath) FROM ${entries} e, session
                WHERE e.session_ref = session.id AND e.subpath > '')
        UNION ALL
        SELECT (SELECT min(e.subpath) FROM ${entries} e, session
                WHERE e.session_ref = session.id AND e.subpath > p.subpath)
        FROM subpaths p WHERE p.subpath IS NOT NULL
      )
      SELECT subpath FROM subpaths WHERE subpath IS NOT NULL`);

    this.appendGroup = {
      none: groupStatement(sessions, entries, daily, 'none'),
      state: groupStatement(sessions, entries, daily, 'state'),
      charge: groupStatement(sessions, entries, daily, 'charge'),
    };

    this.lockForDelete = prepared(`
      SELECT id FROM ${sessions} WHERE project_key = $1 AND session_id = $2 FOR UPDATE`);

    // Run after lockForDelete, in the same transaction: this statement's snapshot then holds
    // every entry committed for the session, and no writer can add one until the commit.
    this.deleteSession = prepared(`
      WITH entries AS (DELETE FROM ${entries} WHERE session_ref = $1)
      DELETE FROM ${sessions} WHERE id = $1`);

    this.deleteSubpath = prepared(`
      DELETE FROM ${entries}
      WHERE session_ref = (
        SELECT id FROM ${sessions} WHERE project_key = $1 AND session_id = $2
      ) AND subpath = $3`);
  }

  /**
   * A whole main-transcript append in one statement, so one round trip and one commit. The caller
   * folded the summary beforehand from the version of the session it last saw; the write goes
   * through only if the session row ($5) still has that version ($3, 0 for "no main transcript
   * yet", where a missing row is created) and none of the batch's uuids is stored. Otherwise it
   * writes nothing and returns no row: the caller then reads mainState and folds again.
   * Usage is folded the same way, from the same version, and written in the same statement.
   *   $1 projectKey, $2 sessionId, $3 expected version, $4 summary data, $5 session row id or
   *   null, then without usage $6… the batch, with the state alone $6 (below) and $7… the
   *   batch, with a charge $6-$13 (below) and $14… the batch
   */
  appendMain(size: number, usage: UsageWrite): Statement {
    const slots = slotsFor(size);
    const cache = this.mainBySlots.get(usage) as Map<number, Statement>;
    const known = cache.get(slots);
    if (known) return known;
    const { sessions, entries, daily } = this;
    const withUsage = usage !== 'none';
    const withCharge = usage === 'charge';
    const batch = batchSql(withCharge ? 14 : withUsage ? 7 : 6, slots);
    // With usage: $6 the folded state; with a charge also $7 the day to charge (null: the
    // session is not registered), $8 cost in nanos, $9 turns, $10-$13 tokens. Without, the
    // statement is exactly what it was before usage existed, so appends that cannot move usage
    // pay nothing for it, and those that charge nothing pay nothing for the daily table.
    const usageSet = withUsage ? ', usage_state = $6' : '';
    const statement = prepared(`
      WITH batch AS (${batch.rows}),
      duplicates AS (
        -- One probe of the uuid index per entry. LIMIT keeps the planner from turning this into
        -- a join, whose cached generic plan could read every uuid of the session instead.
        SELECT found.uuid FROM batch b
        CROSS JOIN LATERAL (
          SELECT e.uuid FROM ${entries} e
          WHERE e.session_ref = $5::bigint AND e.subpath = '' AND e.uuid = b.uuid
          LIMIT 1
        ) AS found
      ),
      updated AS (
        -- The version is checked on the newest row, after waiting for its lock. If it is still
        -- the one the caller saw, no main-transcript write has committed since, so the snapshot
        -- this statement checked duplicates against was complete.
        UPDATE ${sessions} AS t SET
          next_seq = t.next_seq + ${batch.count},
          version = DEFAULT,
          mtime = GREATEST(${NOW_MS}, t.mtime + 1),
          summary = $4${usageSet}
        WHERE t.id = $5::bigint AND t.version = $3::bigint AND NOT EXISTS (SELECT FROM duplicates)
        RETURNING t.id, t.next_seq - ${batch.count} AS first_seq, t.version, t.tenant, t.owner
      ),
      created AS (
        INSERT INTO ${sessions} (project_key, session_id, next_seq, mtime, summary${withUsage ? ', usage_state' : ''})
        SELECT $1, $2, ${batch.count}, ${NOW_MS}, $4${withUsage ? ', $6' : ''}
        WHERE $3::bigint = 0 AND NOT EXISTS (SELECT FROM updated)
        ON CONFLICT (project_key, session_id) DO NOTHING
        RETURNING id, 0::bigint AS first_seq, version, tenant, owner
      ),
      claimed AS (
        SELECT * FROM updated UNION ALL SELECT * FROM created
      ),
      inserted AS (
        -- No ON CONFLICT: after the checks above a duplicate means a race this statement did not
        -- foresee, and failing the whole statement is what keeps the summary true.
        INSERT INTO ${entries} (session_ref, subpath, seq, uuid, entry)
        SELECT c.id, '', c.first_seq + b.ord - 1, b.uuid, b.entry FROM claimed c CROSS JOIN batch b
      )${
        withCharge
          ? `,
      charged AS (
        -- A registered session's owner is charged in the same statement, so entries and charge
        -- commit together. The owner is read from the row as written: never a stale copy.
        INSERT INTO ${daily} AS d (tenant, owner, day, cost_nanos, turns, input_tokens,
          output_tokens, cache_read_tokens, cache_creation_tokens)
        SELECT c.tenant, c.owner, $7::text, $8::bigint, $9::bigint, $10::bigint, $11::bigint,
          $12::bigint, $13::bigint
        FROM claimed c WHERE c.tenant IS NOT NULL AND $7::text IS NOT NULL
        ${ADD_TO_DAY}
      )`
          : ''
      }
      SELECT id, version FROM claimed`);
    cache.set(slots, statement);
    return statement;
  }

  /**
   * Main-transcript appends of several sessions in one statement, hence one round trip and one
   * commit for all of them (group commit). Each session's part is exactly appendMain(): written
   * only if its row still has the version its caller folded from and none of its uuids is stored.
   * Returns one row per session written, by its 1-based place `k` in the arrays; a session with no
   * row lost its race and wrote nothing. Callers order the sessions by row id, which with the
   * plan this takes locks the rows in that order; a deadlock between two processes' groups is
   * possible all the same, and is retried session by session like any other failure.
   *   $1 projectKeys, $2 sessionIds, $3 expected versions, $4 row ids (null = not known),
   *   $5 entry counts, $6 summaries, newline-separated;
   *   $7 each entry's session k, $8 its 1-based place in its session's batch, $9 its uuid,
   *   $10 the entries, newline-separated.
   * JSON text from JSON.stringify never holds a raw newline, so a newline is a safe separator, and
   * the entries travel without the escaping a text[] literal would add to every quote.
   * The others also write usage, and charges, see groupStatement().
   */
  readonly appendGroup: Readonly<Record<UsageWrite, Statement>>;

  /**
   * A subagent transcript append in one statement: no summary to keep, so the row lock only hands
   * out positions and the uuid index drops what is already stored. Returns the session row as it
   * was under the lock, which spares the next main-transcript append a read.
   *   $1 projectKey, $2 sessionId, $3 subpath, $4… the batch
   */
  appendSubpath(size: number): Statement {
    const slots = slotsFor(size);
    const known = this.subpathBySlots.get(slots);
    if (known) return known;
    const { sessions, entries } = this;
    const batch = batchSql(4, slots);
    const statement = prepared(`
      WITH batch AS (${batch.rows}),
      claimed AS (
        INSERT INTO ${sessions} AS t (project_key, session_id, next_seq, version)
        VALUES ($1, $2, ${batch.count}, 0)
        ON CONFLICT (project_key, session_id)
          DO UPDATE SET next_seq = t.next_seq + ${batch.count}
        RETURNING t.id, t.next_seq - ${batch.count} AS first_seq, t.version, t.summary,
          t.usage_state
      ),
      inserted AS (
        INSERT INTO ${entries} (session_ref, subpath, seq, uuid, entry)
        SELECT c.id, $3, c.first_seq + b.ord - 1, b.uuid, b.entry FROM claimed c CROSS JOIN batch b
        ON CONFLICT (session_ref, subpath, uuid) WHERE uuid IS NOT NULL DO NOTHING
      )
      SELECT id, version, summary, usage_state FROM claimed`);
    this.subpathBySlots.set(slots, statement);
    return statement;
  }
}
