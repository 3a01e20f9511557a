/**
 * Seeded randomness for the property tests, so a failing run replays exactly from its seed.
 * xorshift32: tiny, fast and good enough to shuffle test data; not for anything else.
 */
export interface Random {
  /** A number in [0, 1). */
  next(): number;
  /** A whole number in [0, n). */
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
  /** Each item with probability `p` (default 0.4), in order. */
  some<T>(items: readonly T[], p?: number): T[];
}

export function seededRandom(seed: number): Random {
  // Zero is xorshift's one fixed point; any other start runs through every 32-bit state.
  let state = seed >>> 0 || 0x9e3779b9;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    next,
    int,
    pick: <T>(items: readonly T[]) => items[int(items.length)] as T,
    chance: (p: number) => next() < p,
    some: <T>(items: readonly T[], p = 0.4) => items.filter(() => next() < p),
  };
}
