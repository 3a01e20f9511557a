/**
 * Runner benchmark: turns through the hub with the real Agent SDK (its bundled `claude` CLI)
 * against the mock Anthropic API at zero latency, on a SQLite file in a temporary directory.
 *
 * - Turn overhead: follow-up turns with the warm pool off (every turn starts the CLI and resumes
 *   from the store) against follow-up turns to a session parked in the warm pool, interleaved so
 *   that machine noise hits both alike, beside the bare model round trip (one request to the
 *   mock with the body the CLI last sent), which is subtracted to get the runner's own overhead.
 * - Memory per warm session: PSS and RSS of the parked CLI processes (each with its children),
 *   and the Node.js heap the parked sessions add to the hub's process.
 * - Sessions in parallel: N sessions started at once, then a follow-up to all N at once, with
 *   the warm pool sized for them and with it off.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, realpath, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { SpawnedProcess, SpawnOptions } from '@anthropic-ai/claude-agent-sdk';
import type { Backend } from '../src/backends/backend.js';
import { openBackend } from '../src/backends/open.js';
import type { Identity } from '../src/core/identity.js';
import { createHub, type SessionHub } from '../src/hub/hub.js';
import type { RunnerOptions } from '../src/runner/runner.js';
import type { Turn, TurnOutcome } from '../src/runner/turn.js';
import { type MockAnthropic, startMockAnthropic } from '../src/testing/mock-anthropic/index.js';
import { summarize } from './stats.js';

export interface RunnerBenchOptions {
  /** Measured follow-up turns per mode (cold and warm). */
  turns: number;
  /** Sessions parked in the warm pool for the memory figures. */
  warmSessions: number;
  /** Sessions started (and then sent a follow-up) at once. */
  parallel: number;
  /** Also run the parallel rounds with the warm pool off. Default true. */
  parallelCold?: boolean;
  /** Progress lines go here. Default: nowhere. */
  log?: (line: string) => void;
}

export interface Distribution {
  p50: number;
  p99: number;
  count: number;
}

export interface TurnModeFigures {
  mode: 'cold' | 'warm';
  /** hub.send() to turn.done() resolving. */
  turn: Distribution;
  /** The same minus the model's own time (requests in the turn × the model round trip p50). */
  overhead: Distribution;
  /** hub.send() to the SDK's result message reaching the caller. */
  toResult: Distribution;
  /** The result message to turn.done(): the runner's bookkeeping after the CLI answered. */
  afterResult: Distribution;
  /** The CLI's own `duration_ms` for the turn. */
  cliDuration: Distribution;
  /** `/v1/messages` requests the mock received per turn (the same in every turn). */
  modelRequestsPerTurn: number;
}

export interface WarmMemoryFigures {
  sessions: number;
  /** CLI processes (with their children) found for the parked sessions. */
  processes: number;
  pssMiBPerSession: number;
  rssMiBPerSession: number;
  pssMiBTotal: number;
  /** The hub process's heap after parking the sessions minus before, per session. */
  nodeHeapMiBPerSession: number;
}

export interface ParallelPhaseFigures {
  pool: 'warm' | 'off';
  phase: 'start' | 'follow-up';
  sessions: number;
  errors: number;
  /** The first few distinct error messages. */
  errorSamples: string[];
  wallMs: number;
  turnsPerSecond: number;
  turn: Distribution;
  /** Turns that ran on a warm process. */
  warmTurns: number;
}

export interface RunnerFigures {
  model: Distribution;
  cold: TurnModeFigures;
  warm: TurnModeFigures;
  /** Warm overhead p50 as a fraction of cold overhead p50 (the goal: ≤ 0.10). */
  warmOverCold: number;
  memory: WarmMemoryFigures;
  parallel: ParallelPhaseFigures[];
  cores: number;
  totalMs: number;
}

const IDENTITY: Identity = { tenant: 'bench', owner: 'bench' };
const MIB = 1024 * 1024;

/**
 * Spawns the CLI the way the runner does by default (it is handed to the runner as
 * `sdkOptions.spawnClaudeCodeProcess`), and keeps the pid of every live CLI process with the
 * session it runs, so the memory figures read exactly the warm sessions' processes.
 */
class CliProcesses {
  private readonly live = new Map<number, string | undefined>();

  readonly spawn = (options: SpawnOptions): SpawnedProcess => {
    const child = spawn(options.command, options.args, {
      cwd: options.cwd,
      env: options.env,
      signal: options.signal,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const pid = child.pid;
    if (pid !== undefined) {
      this.live.set(pid, sessionIdOfArgs(options.args));
      child.once('exit', () => this.live.delete(pid));
    }
    return child;
  };

  pidsOf(sessionId: string): number[] {
    return [...this.live].filter(([, id]) => id === sessionId).map(([pid]) => pid);
  }
}

/** The session a CLI runs, from its `--resume` / `--session-id` argument. */
function sessionIdOfArgs(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    for (const flag of ['--resume', '--session-id']) {
      if (arg === flag) return args[i + 1];
      if (arg.startsWith(`${flag}=`)) return arg.slice(flag.length + 1);
    }
  }
  return undefined;
}

/** Parent pid of every process, from /proc/<pid>/stat. */
async function parentPids(): Promise<Map<number, number>> {
  const parents = new Map<number, number>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      // The command name is in parentheses and may hold spaces; the fields after it are fixed.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parents.set(Number(name), Number(fields[1]));
    } catch {
      // The process ended while we looked.
    }
  }
  return parents;
}

function withDescendants(root: number, parents: Map<number, number>): number[] {
  const tree = [root];
  for (let i = 0; i < tree.length; i++) {
    for (const [pid, parent] of parents) if (parent === tree[i]) tree.push(pid);
  }
  return tree;
}

/**
 * Resident memory of one process in KiB: PSS (shared pages divided among the processes that map
 * them, so a sum over processes counts the CLI binary's pages once) and RSS.
 */
async function processMemory(pid: number): Promise<{ pssKiB: number; rssKiB: number }> {
  const field = (text: string, name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    return match ? Number(match[1]) : Number.NaN;
  };
  try {
    const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
    return { pssKiB: field(rollup, 'Pss'), rssKiB: field(rollup, 'Rss') };
  } catch {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return { pssKiB: Number.NaN, rssKiB: field(status, 'VmRSS') };
  }
}

/** A full garbage collection, without starting Node with --expose-gc. */
function collectGarbage(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

const now = () => performance.now();

/** Everything a section needs: the mock, a SQLite backend in a temp dir, the spawner. */
interface Bench {
  mock: MockAnthropic;
  backend: Backend;
  root: string;
  cli: CliProcesses;
  hubs: SessionHub[];
}

function openHubOn(bench: Bench, name: string, warm: RunnerOptions['warm']): SessionHub {
  const dataDir = path.join(bench.root, name);
  const hub = createHub({
    backend: bench.backend,
    runner: {
      dataDir,
      agent: {
        env: {
          ANTHROPIC_BASE_URL: bench.mock.url,
          ANTHROPIC_API_KEY: 'mock-key',
          CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
        },
      },
      sdkOptions: { spawnClaudeCodeProcess: bench.cli.spawn },
      ...(warm === undefined ? {} : { warm }),
    },
  });
  bench.hubs.push(hub);
  return hub;
}

async function closeHub(bench: Bench, hub: SessionHub): Promise<void> {
  bench.hubs.splice(bench.hubs.indexOf(hub), 1);
  await hub.close();
}

/** A turn's outcome, or what went wrong, with its timings (ms from the call). */
interface TimedTurn {
  outcome: TurnOutcome | null;
  error: string | null;
  totalMs: number;
  toResultMs: number;
}

/** Runs a turn to its end, reading its messages as a caller would, and times it. */
async function timeTurn(makeTurn: () => Turn): Promise<TimedTurn> {
  const start = now();
  let toResultMs = Number.NaN;
  try {
    const turn = makeTurn();
    for await (const event of turn) {
      if (event.type === 'result') toResultMs = now() - start;
    }
    const outcome = await turn.done();
    const error =
      outcome.status === 'completed'
        ? null
        : `${outcome.status}: ${outcome.error?.message ?? 'no error message'}`;
    return { outcome, error, totalMs: now() - start, toResultMs };
  } catch (error) {
    return { outcome: null, error: String(error), totalMs: now() - start, toResultMs };
  }
}

/** One bare request to the mock's /v1/messages with this body, read to its end, in ms. */
async function modelRoundTrip(url: string, body: string): Promise<number> {
  const start = now();
  const response = await fetch(`${url}/v1/messages`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-api-key': 'mock-key',
      'anthropic-version': '2023-06-01',
    },
    body,
  });
  await response.text();
  const ms = now() - start;
  if (!response.ok) throw new Error(`The mock answered ${response.status}.`);
  return ms;
}

function completed(turn: TimedTurn, what: string): TurnOutcome {
  if (!turn.outcome || turn.error) throw new Error(`${what} failed: ${turn.error}`);
  return turn.outcome;
}

/** What is recorded of each measured turn of one mode. */
interface ModeSamples {
  turn: number[];
  toResult: number[];
  cli: number[];
  requests: number[];
}

async function turnOverhead(bench: Bench, turns: number, log: (line: string) => void) {
  const coldHub = openHubOn(bench, 'cold', false);
  const warmHub = openHubOn(bench, 'warm', undefined);
  const cold = completed(
    await timeTurn(() => coldHub.start({ identity: IDENTITY, prompt: 'Plan a day in Lisbon' })),
    'the cold session start',
  ).sessionId;
  const warm = completed(
    await timeTurn(() => warmHub.start({ identity: IDENTITY, prompt: 'Plan a day in Lisbon' })),
    'the warm session start',
  ).sessionId;

  const samples: Record<'cold' | 'warm', ModeSamples> = {
    cold: { turn: [], toResult: [], cli: [], requests: [] },
    warm: { turn: [], toResult: [], cli: [], requests: [] },
  };
  const model: number[] = [];
  const runOne = async (mode: 'cold' | 'warm', index: number, measured: boolean) => {
    const hub = mode === 'cold' ? coldHub : warmHub;
    const sessionId = mode === 'cold' ? cold : warm;
    const requestsBefore = bench.mock.requests.length;
    const timed = await timeTurn(() =>
      hub.send(sessionId, `Follow-up ${index}: and after that?`, { identity: IDENTITY }),
    );
    const outcome = completed(timed, `a ${mode} follow-up turn`);
    if (outcome.warm !== (mode === 'warm')) {
      throw new Error(`A ${mode} follow-up turn ran ${outcome.warm ? 'warm' : 'cold'}.`);
    }
    if (!measured) return;
    const modeSamples = samples[mode];
    modeSamples.turn.push(timed.totalMs);
    modeSamples.toResult.push(timed.toResultMs);
    modeSamples.cli.push(outcome.result?.duration_ms ?? Number.NaN);
    modeSamples.requests.push(bench.mock.requests.length - requestsBefore);
  };

  // One unmeasured follow-up each (the first cold resume also warms the disk cache), and one
  // unmeasured model request (it opens the connection the later ones reuse, as the CLI does).
  await runOne('cold', 0, false);
  await runOne('warm', 0, false);
  const warmBody = () => {
    const last = bench.mock.requests.findLast((request) => request.sessionId === warm);
    if (!last) throw new Error('The mock saw no request of the warm session.');
    return JSON.stringify(last.body);
  };
  await modelRoundTrip(bench.mock.url, warmBody());
  for (let i = 1; i <= turns; i++) {
    // Alternate which mode goes first, so neither always follows the other.
    const order: Array<'cold' | 'warm'> = i % 2 === 1 ? ['cold', 'warm'] : ['warm', 'cold'];
    for (const mode of order) await runOne(mode, i, true);
    // The model's own cost: the body the CLI just sent for the warm session, sent bare.
    model.push(await modelRoundTrip(bench.mock.url, warmBody()));
    if (i % 10 === 0) log(`    ${i}/${turns} turn pairs`);
  }
  await closeHub(bench, coldHub);
  await closeHub(bench, warmHub);

  const modelP50 = summarize(model).p50;
  const figures = (mode: 'cold' | 'warm'): TurnModeFigures => {
    const s = samples[mode];
    const requests = [...new Set(s.requests)];
    if (requests.length !== 1) {
      throw new Error(`${mode} turns made varying numbers of model requests: ${requests}.`);
    }
    const perTurn = requests[0] as number;
    return {
      mode,
      turn: summarize(s.turn),
      overhead: summarize(s.turn.map((ms) => ms - perTurn * modelP50)),
      toResult: summarize(s.toResult),
      afterResult: summarize(s.turn.map((ms, i) => ms - (s.toResult[i] as number))),
      cliDuration: summarize(s.cli),
      modelRequestsPerTurn: perTurn,
    };
  };
  return { model: summarize(model), cold: figures('cold'), warm: figures('warm') };
}

async function warmMemory(bench: Bench, sessions: number): Promise<WarmMemoryFigures> {
  const gc = collectGarbage();
  const hub = openHubOn(bench, 'memory', { maxSessions: sessions });
  bench.mock.reset();
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  const ids: string[] = [];
  for (let i = 0; i < sessions; i++) {
    // A first turn and one warm follow-up: a session as it sits between a user's messages.
    const id = completed(
      await timeTurn(() => hub.start({ identity: IDENTITY, prompt: `Session ${i}: hello` })),
      'a session start',
    ).sessionId;
    completed(
      await timeTurn(() => hub.send(id, 'And then?', { identity: IDENTITY })),
      'a follow-up turn',
    );
    ids.push(id);
  }
  if (hub.warmSessions !== sessions) {
    throw new Error(`${hub.warmSessions} sessions are warm, ${sessions} were meant to be.`);
  }
  // The mock keeps every request it saw; that is the benchmark's memory, not the hub's.
  bench.mock.reset();
  gc();
  const heapAfter = process.memoryUsage().heapUsed;

  const parents = await parentPids();
  let pss = 0;
  let rss = 0;
  let processes = 0;
  for (const id of ids) {
    const roots = bench.cli.pidsOf(id);
    if (roots.length !== 1) throw new Error(`Session ${id} has ${roots.length} live CLIs.`);
    for (const pid of withDescendants(roots[0] as number, parents)) {
      const memory = await processMemory(pid);
      pss += memory.pssKiB;
      rss += memory.rssKiB;
      processes += 1;
    }
  }
  await closeHub(bench, hub);
  return {
    sessions,
    processes,
    pssMiBPerSession: pss / 1024 / sessions,
    rssMiBPerSession: rss / 1024 / sessions,
    pssMiBTotal: pss / 1024,
    nodeHeapMiBPerSession: (heapAfter - heapBefore) / MIB / sessions,
  };
}

/** Runs every turn at once; errors are turns that threw or did not complete. */
async function allAtOnce(
  pool: 'warm' | 'off',
  phase: 'start' | 'follow-up',
  makeTurns: Array<() => Turn>,
): Promise<{ figures: ParallelPhaseFigures; outcomes: Array<TurnOutcome | null> }> {
  const start = now();
  const turns = await Promise.all(makeTurns.map((makeTurn) => timeTurn(makeTurn)));
  const wallMs = now() - start;
  const failed = turns.filter((turn) => turn.error !== null);
  return {
    figures: {
      pool,
      phase,
      sessions: turns.length,
      errors: failed.length,
      errorSamples: [...new Set(failed.map((turn) => turn.error as string))].slice(0, 3),
      wallMs,
      turnsPerSecond: (turns.length - failed.length) / (wallMs / 1000),
      turn: summarize(turns.map((turn) => turn.totalMs)),
      warmTurns: turns.filter((turn) => turn.outcome?.warm).length,
    },
    outcomes: turns.map((turn) => (turn.error === null ? turn.outcome : null)),
  };
}

async function parallelRound(
  bench: Bench,
  sessions: number,
  pool: 'warm' | 'off',
): Promise<ParallelPhaseFigures[]> {
  const hub = openHubOn(
    bench,
    `parallel-${pool}`,
    pool === 'warm' ? { maxSessions: sessions } : false,
  );
  const started = await allAtOnce(
    pool,
    'start',
    Array.from(
      { length: sessions },
      (_, i) => () => hub.start({ identity: IDENTITY, prompt: `Parallel session ${i}: hello` }),
    ),
  );
  const ids = started.outcomes.flatMap((outcome) => (outcome ? [outcome.sessionId] : []));
  const followed = await allAtOnce(
    pool,
    'follow-up',
    ids.map((id) => () => hub.send(id, 'And then?', { identity: IDENTITY })),
  );
  await closeHub(bench, hub);
  return [started.figures, followed.figures];
}

export async function benchRunner(options: RunnerBenchOptions): Promise<RunnerFigures> {
  const log = options.log ?? (() => {});
  const began = now();
  const root = await realpath(await mkdtemp(path.join(tmpdir(), 'sessionhub-bench-runner-')));
  const mock = await startMockAnthropic();
  const backend = await openBackend(`sqlite://${path.join(root, 'hub.db')}`);
  const bench: Bench = { mock, backend, root, cli: new CliProcesses(), hubs: [] };
  try {
    log(`  runner: ${options.turns} cold and ${options.turns} warm follow-up turns, interleaved…`);
    const turns = await turnOverhead(bench, options.turns, log);
    log(`  runner: memory of ${options.warmSessions} warm sessions…`);
    const memory = await warmMemory(bench, options.warmSessions);
    log(`  runner: ${options.parallel} sessions in parallel, warm pool on…`);
    const parallel = await parallelRound(bench, options.parallel, 'warm');
    if (options.parallelCold ?? true) {
      log(`  runner: ${options.parallel} sessions in parallel, warm pool off…`);
      parallel.push(...(await parallelRound(bench, options.parallel, 'off')));
    }
    return {
      ...turns,
      warmOverCold: turns.warm.overhead.p50 / turns.cold.overhead.p50,
      memory,
      parallel,
      cores: availableParallelism(),
      totalMs: now() - began,
    };
  } finally {
    for (const hub of bench.hubs.splice(0)) await hub.close().catch(() => {});
    await backend.close();
    await mock.close();
    await rm(root, { recursive: true, force: true });
  }
}
