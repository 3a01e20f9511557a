import { isSessionHubError, type SessionHubError } from '../core/errors.js';

/**
 * What the CLI prints and the exit codes it ends with, so scripts can rely on both:
 *
 *   0  done
 *   1  an unexpected error (a bug, or something the message explains)
 *   2  bad usage or configuration (flags, environment, config file, input)
 *   3  not found (a session or key that does not exist, or is not visible)
 *   4  the backend is unreachable
 *   5  refused: busy, expired, archived, over a limit, forbidden
 */
export const EXIT = { ok: 0, error: 1, usage: 2, notFound: 3, unavailable: 4, refused: 5 } as const;

export function exitCodeOf(error: unknown): number {
  if (!isSessionHubError(error)) return EXIT.error;
  switch (error.code) {
    case 'INVALID_OPTION':
    case 'INVALID_INPUT':
    case 'INVALID_BACKEND_URL':
    case 'INVALID_SESSION_KEY':
    case 'INVALID_ENTRY':
      return EXIT.usage;
    case 'SESSION_NOT_FOUND':
    case 'NOT_FOUND':
      return EXIT.notFound;
    case 'BACKEND_UNAVAILABLE':
      return EXIT.unavailable;
    case 'SESSION_BUSY':
    case 'SESSION_EXPIRED':
    case 'SESSION_ARCHIVED':
    case 'LIMIT_EXCEEDED':
    case 'FORBIDDEN':
    case 'SESSION_EXISTS':
      return EXIT.refused;
    default:
      return EXIT.error;
  }
}

export interface Output {
  json: boolean;
  out(text: string): void;
  err(text: string): void;
}

export function consoleOutput(json: boolean): Output {
  return {
    json,
    out: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(`${text}\n`),
  };
}

/** Prints `value` as JSON, or as `human()` renders it. */
export function show(output: Output, value: unknown, human: () => string): void {
  output.out(output.json ? JSON.stringify(value, null, 2) : human());
}

/** A plain text table: a header row, then one row per item, columns padded to fit. */
export function table(headers: string[], rows: string[][]): string {
  if (rows.length === 0) return '(none)';
  const widths = headers.map((header, i) =>
    Math.max(header.length, ...rows.map((row) => (row[i] ?? '').length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** A time for people: ISO without milliseconds, or '-' for none. */
export function when(epochMs: number | null | undefined): string {
  return epochMs === null || epochMs === undefined
    ? '-'
    : new Date(epochMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function usd(value: number): string {
  return `$${value.toFixed(4)}`;
}

/** An error for people: the message, and with --json the error shape on stderr. */
export function reportError(output: Output, error: unknown): void {
  if (isSessionHubError(error)) {
    const apiError = error as SessionHubError;
    output.err(
      output.json
        ? JSON.stringify({ error: apiError.toJSON() })
        : `error [${apiError.code}]: ${apiError.message}`,
    );
    return;
  }
  output.err(`error: ${(error as Error)?.stack ?? String(error)}`);
}
