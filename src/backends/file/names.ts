import { createHash } from 'node:crypto';

/**
 * Turns a key component (projectKey, sessionId, subpath) into a file name that is safe on any
 * file system and never equal to another component's name:
 * - lowercase letters, digits, '_' and '-' stay; an uppercase letter becomes '^' and its lowercase
 *   (so 'A' and 'a' differ on case-insensitive disks); everything else becomes %xx (lowercase hex) per UTF-8 byte
 *   ('.', '/', '%', '^' and '~' included, so '..' or '/' can never reach a path);
 * - a name longer than MAX_PLAIN is cut and given '~' and a SHA-256 of the component. '~' never
 *   appears in a plain name, so hashed and plain names cannot meet.
 */
const MAX_PLAIN = 120;

export function encodeName(component: string): string {
  let out = '';
  for (const char of component) {
    const code = char.codePointAt(0) as number;
    if (
      (code >= 0x61 && code <= 0x7a) ||
      (code >= 0x30 && code <= 0x39) ||
      char === '_' ||
      char === '-'
    ) {
      out += char;
    } else if (code >= 0x41 && code <= 0x5a) {
      out += `^${char.toLowerCase()}`;
    } else {
      for (const byte of Buffer.from(char, 'utf8')) {
        out += `%${byte.toString(16).padStart(2, '0')}`;
      }
    }
  }
  if (out.length <= MAX_PLAIN) return out;
  const digest = createHash('sha256').update(component, 'utf8').digest('hex');
  return `${out.slice(0, 60)}~${digest}`;
}

/** The component a plain (unhashed) name came from; undefined for a hashed name. */
export function decodeName(name: string): string | undefined {
  if (name.includes('~')) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const char = name[i] as string;
    if (char === '%') {
      bytes.push(Number.parseInt(name.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (char === '^') {
      bytes.push((name[i + 1] as string).toUpperCase().charCodeAt(0));
      i += 1;
    } else {
      bytes.push(char.charCodeAt(0));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
