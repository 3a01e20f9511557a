/** Small helpers for timing: percentiles over recorded durations. */
export function percentile(sortedMs: number[], p: number): number {
  if (sortedMs.length === 0) return Number.NaN;
  const index = Math.min(
    sortedMs.length - 1,
    Math.max(0, Math.ceil((p / 100) * sortedMs.length) - 1),
  );
  return sortedMs[index] as number;
}

export function summarize(durationsMs: number[]): { p50: number; p99: number; count: number } {
  const sorted = [...durationsMs].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), count: sorted.length };
}

export async function timed<T>(task: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = process.hrtime.bigint();
  const value = await task();
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, value };
}

export function fmt(ms: number, digits = 2): string {
  return Number.isNaN(ms) ? '—' : ms.toFixed(digits);
}

/** Which sample, counted from the slowest (1), `percentile(…, 99)` returns for `count` samples. */
export function p99Rank(count: number): number {
  return count - Math.max(0, Math.ceil(0.99 * count) - 1);
}
