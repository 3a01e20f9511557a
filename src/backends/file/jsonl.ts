import { open as openFile, readFile, rename, rm, truncate } from 'node:fs/promises';

/** File primitives the file backend builds on: JSONL parsing, appends and atomic rewrites. */

export function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'ENOENT';
}

/**
 * Parses JSONL, leaving out a last line without its newline (a write torn by a crash, never
 * acknowledged). Works on the raw bytes: decoding line by line measured twice as fast as decoding
 * the whole file to one string and splitting it. Every line is parsed before anything is
 * returned, so a corrupt line throws before a caller has used any of the file. Returns how many
 * bytes the complete lines take.
 */
export function parseJsonl<T>(bytes: Buffer): {
  values: T[];
  completeBytes: number;
  torn: boolean;
} {
  const values: T[] = [];
  let start = 0;
  for (;;) {
    const end = bytes.indexOf(10, start);
    if (end === -1) break;
    if (end > start) values.push(JSON.parse(bytes.toString('utf8', start, end)) as T);
    start = end + 1;
  }
  return { values, completeBytes: start, torn: start < bytes.length };
}

export async function readBytes(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

/**
 * Appends `text` to a file that holds `knownBytes` complete bytes. If the write fails part way,
 * the file is cut back to `knownBytes`, so the next append never lands behind half a line (which
 * would make both lines unreadable). Returns the new size.
 */
export async function appendText(
  file: string,
  text: string,
  knownBytes: number,
  fsync: boolean,
): Promise<number> {
  const data = Buffer.from(text, 'utf8');
  try {
    const handle = await openFile(file, 'a');
    try {
      await handle.writeFile(data);
      if (fsync) await handle.datasync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    await truncate(file, knownBytes).catch(() => undefined);
    throw error;
  }
  return knownBytes + data.length;
}

/**
 * Writes a whole file through a temporary name and a rename, so readers and a crash see the old
 * file or the new one, never half. `chunks` are written one by one: a compacted index of many
 * sessions can be larger than the longest string V8 allows. Returns the size written.
 */
export async function writeAtomically(
  file: string,
  chunks: Iterable<string>,
  fsync: boolean,
): Promise<number> {
  const temp = `${file}.${process.pid}.tmp`;
  let size = 0;
  try {
    const handle = await openFile(temp, 'w');
    try {
      for (const chunk of chunks) {
        const data = Buffer.from(chunk, 'utf8');
        let written = 0;
        while (written < data.length) {
          written += (await handle.write(data, written)).bytesWritten;
        }
        size += data.length;
      }
      if (fsync) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw error;
  }
  return size;
}
