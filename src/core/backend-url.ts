import { SessionHubError } from './errors.js';

/** Where sessionhub keeps everything when nothing else is configured. */
export const DEFAULT_BACKEND_URL = 'sqlite:./.sessionhub/hub.db';

export const BACKEND_URL_FORMS = [
  'sqlite:PATH (e.g. sqlite:./.sessionhub/hub.db, sqlite::memory:)',
  'postgres://USER@HOST:PORT/DB or postgresql://… (optional ?schema=NAME&max=POOLSIZE)',
  'redis://HOST:PORT/DB or rediss://… (optional ?prefix=NAME)',
  'file:DIR (a directory of JSONL files)',
  'memory:',
] as const;

export type BackendKind = 'sqlite' | 'postgres' | 'redis' | 'file' | 'memory';

export type BackendLocation =
  | { kind: 'memory' }
  | { kind: 'sqlite'; path: string; synchronous: 'normal' | 'full' }
  | { kind: 'file'; dir: string; fsync: boolean }
  | { kind: 'postgres'; connectionString: string; schema: string; poolSize: number }
  | { kind: 'redis'; connectionString: string; prefix: string };

function invalid(url: string, why: string): SessionHubError {
  return new SessionHubError(
    'INVALID_BACKEND_URL',
    `Cannot use backend URL "${redactUrl(url)}": ${why}. Accepted forms: ${BACKEND_URL_FORMS.join('; ')}.`,
    { url: redactUrl(url), accepted: [...BACKEND_URL_FORMS] },
  );
}

/** Hides a password in a URL so it can be logged or put in an error. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:/@]*:)[^@/]*@/i, '$1***@');
}

/** Splits "PATH?a=b" into the path and its options; a path may itself contain no '?'. */
function splitQuery(rest: string): { path: string; params: URLSearchParams } {
  const q = rest.indexOf('?');
  if (q === -1) return { path: rest, params: new URLSearchParams() };
  return { path: rest.slice(0, q), params: new URLSearchParams(rest.slice(q + 1)) };
}

function rejectUnknown(url: string, params: URLSearchParams, known: readonly string[]): void {
  for (const name of params.keys()) {
    if (!known.includes(name)) {
      throw invalid(
        url,
        `unknown option "${name}" (this backend accepts: ${known.join(', ') || 'none'})`,
      );
    }
  }
}

function booleanParam(url: string, params: URLSearchParams, name: string, fallback: boolean) {
  const value = params.get(name);
  if (value === null) return fallback;
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  if (['0', 'false', 'no', 'off'].includes(value)) return false;
  throw invalid(url, `option ${name}=${value} must be true or false`);
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Parses a backend URL into where and how to open it. Pure: touches no file or socket. */
export function parseBackendUrl(url: string): BackendLocation {
  if (typeof url !== 'string' || url.trim() === '') {
    throw invalid(String(url), 'it is empty');
  }
  const schemeEnd = url.indexOf(':');
  const scheme = schemeEnd === -1 ? '' : url.slice(0, schemeEnd).toLowerCase();
  const rest = url.slice(schemeEnd + 1);

  switch (scheme) {
    case 'memory': {
      if (rest !== '' && rest !== '//') throw invalid(url, 'memory: takes no path or options');
      return { kind: 'memory' };
    }
    case 'sqlite': {
      const { path, params } = splitQuery(rest.replace(/^\/\//, ''));
      rejectUnknown(url, params, ['synchronous']);
      if (path === '') throw invalid(url, 'sqlite: needs a file path, e.g. sqlite:./data/hub.db');
      const synchronous = (params.get('synchronous') ?? 'normal').toLowerCase();
      if (synchronous !== 'normal' && synchronous !== 'full') {
        throw invalid(url, 'option synchronous must be normal or full');
      }
      return { kind: 'sqlite', path, synchronous };
    }
    case 'file': {
      const { path, params } = splitQuery(rest.replace(/^\/\//, ''));
      rejectUnknown(url, params, ['fsync']);
      if (path === '') throw invalid(url, 'file: needs a directory, e.g. file:./transcripts');
      return { kind: 'file', dir: path, fsync: booleanParam(url, params, 'fsync', false) };
    }
    case 'postgres':
    case 'postgresql': {
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        throw invalid(url, 'it is not a valid URL');
      }
      const schema = parsed.searchParams.get('schema') ?? 'public';
      if (!IDENTIFIER.test(schema)) {
        throw invalid(
          url,
          `schema "${schema}" must be a plain SQL identifier (letters, digits, _)`,
        );
      }
      const max = parsed.searchParams.get('max') ?? '10';
      const poolSize = Number(max);
      if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 1000) {
        throw invalid(url, `option max=${max} must be a whole number from 1 to 1000`);
      }
      parsed.searchParams.delete('schema');
      parsed.searchParams.delete('max');
      return { kind: 'postgres', connectionString: parsed.toString(), schema, poolSize };
    }
    case 'redis':
    case 'rediss': {
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        throw invalid(url, 'it is not a valid URL');
      }
      rejectUnknown(url, parsed.searchParams, ['prefix']);
      const prefix = parsed.searchParams.get('prefix') ?? 'sessionhub';
      if (prefix === '' || /[{}\s]/.test(prefix)) {
        throw invalid(url, 'option prefix must be non-empty, without braces or spaces');
      }
      parsed.searchParams.delete('prefix');
      return { kind: 'redis', connectionString: parsed.toString(), prefix };
    }
    default:
      throw invalid(url, scheme ? `"${scheme}:" is not a known backend` : 'it has no scheme');
  }
}
