import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { SweepResult } from '../hub/sweeper.js';
import type { TurnOutcome } from '../runner/turn.js';

/**
 * The service's Prometheus metrics, in a registry of its own (so two services in one process,
 * as in tests, never share counters). Names follow Prometheus conventions: `_total` counters,
 * seconds and dollars as base units.
 */
export class ServiceMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly latency: Histogram<'method' | 'route'>;
  private readonly turns: Counter<'status'>;
  private readonly tokens: Counter<'kind'>;
  private readonly cost: Counter;
  private readonly sweeps: Counter<'outcome'>;
  private readonly swept: Counter<'action'>;
  private readonly errors: Counter<'code'>;

  constructor(live: { runningTurns(): number; warmSessions(): number }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'sessionhub_' });
    this.requests = new Counter({
      name: 'sessionhub_http_requests_total',
      help: 'HTTP requests answered, by method, route and status.',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.latency = new Histogram({
      name: 'sessionhub_http_request_duration_seconds',
      help: 'Time to answer an HTTP request (for a streamed turn: until the stream starts).',
      labelNames: ['method', 'route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.turns = new Counter({
      name: 'sessionhub_turns_total',
      help: 'Turns run by this instance, by how they ended.',
      labelNames: ['status'],
      registers,
    });
    this.tokens = new Counter({
      name: 'sessionhub_turn_tokens_total',
      help: 'Tokens counted for the turns this instance ran, by kind.',
      labelNames: ['kind'],
      registers,
    });
    this.cost = new Counter({
      name: 'sessionhub_turn_cost_usd_total',
      help: 'Cost in US dollars counted for the turns this instance ran.',
      registers,
    });
    new Gauge({
      name: 'sessionhub_running_turns',
      help: 'Turns running on this instance now (sessions in an active turn).',
      registers,
      collect() {
        this.set(live.runningTurns());
      },
    });
    new Gauge({
      name: 'sessionhub_warm_sessions',
      help: 'Sessions with a warm SDK process on this instance now.',
      registers,
      collect() {
        this.set(live.warmSessions());
      },
    });
    this.sweeps = new Counter({
      name: 'sessionhub_sweeps_total',
      help: 'Background sweeps: ran, skipped (another instance held the sweep lease), failed.',
      labelNames: ['outcome'],
      registers,
    });
    this.swept = new Counter({
      name: 'sessionhub_swept_sessions_total',
      help: 'Sessions the sweeps of this instance expired or purged.',
      labelNames: ['action'],
      registers,
    });
    this.errors = new Counter({
      name: 'sessionhub_errors_total',
      help: 'Error responses (and errors in streams), by error code.',
      labelNames: ['code'],
      registers,
    });
  }

  request(method: string, route: string, status: number, seconds: number): void {
    this.requests.inc({ method, route, status: String(status) });
    this.latency.observe({ method, route }, seconds);
  }

  turn(outcome: TurnOutcome): void {
    this.turns.inc({ status: outcome.status });
    const { tokens, costUsd } = outcome.spent;
    this.tokens.inc({ kind: 'input' }, tokens.inputTokens);
    this.tokens.inc({ kind: 'output' }, tokens.outputTokens);
    this.tokens.inc({ kind: 'cache_read' }, tokens.cacheReadInputTokens);
    this.tokens.inc({ kind: 'cache_creation' }, tokens.cacheCreationInputTokens);
    this.cost.inc(costUsd);
  }

  sweep(result: SweepResult | null): void {
    if (result === null) {
      this.sweeps.inc({ outcome: 'failed' });
      return;
    }
    this.sweeps.inc({ outcome: result.ran ? 'ran' : 'skipped' });
    this.swept.inc({ action: 'expired' }, result.expired);
    this.swept.inc({ action: 'purged' }, result.purged);
  }

  error(code: string): void {
    this.errors.inc({ code });
  }
}
