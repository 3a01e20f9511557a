import { access, mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';

/**
 * Where a tenant's SDK processes run: their own working directory and their own
 * CLAUDE_CONFIG_DIR under the hub's data directory, so tenants never share files, settings or
 * local transcripts.
 */
export interface TenantWorkspace {
  cwd: string;
  configDir: string;
}

/** A tenant name as one safe path segment: percent-encoded, so no two names collide. */
function segment(tenant: string): string {
  return encodeURIComponent(tenant).replace(/\./g, '%2E').replace(/\*/g, '%2A');
}

export async function tenantWorkspace(dataDir: string, tenant: string): Promise<TenantWorkspace> {
  const root = path.join(path.resolve(dataDir), 'tenants', segment(tenant));
  const workspace = { cwd: path.join(root, 'work'), configDir: path.join(root, 'claude') };
  await mkdir(workspace.cwd, { recursive: true });
  await mkdir(workspace.configDir, { recursive: true });
  return workspace;
}

/**
 * The local JSONL file the CLI wrote for a session's transcript (or a subagent's, by subpath),
 * under the config dir's `projects/<project>/`. Null if there is none.
 */
export async function localTranscriptPath(
  configDir: string,
  sessionId: string,
  subpath?: string,
): Promise<string | null> {
  const projects = path.join(configDir, 'projects');
  let names: string[];
  try {
    names = await readdir(projects);
  } catch {
    return null;
  }
  const relative = subpath ? path.join(sessionId, `${subpath}.jsonl`) : `${sessionId}.jsonl`;
  for (const name of names) {
    const candidate = path.join(projects, name, relative);
    try {
      await access(candidate);
      return candidate;
    } catch {
      // not in this project
    }
  }
  return null;
}

/** Removes a session's local transcript files once the store holds everything. */
export async function removeLocalTranscripts(configDir: string, sessionId: string): Promise<void> {
  const projects = path.join(configDir, 'projects');
  let names: string[];
  try {
    names = await readdir(projects);
  } catch {
    return;
  }
  await Promise.all(
    names.flatMap((name) => [
      rm(path.join(projects, name, `${sessionId}.jsonl`), { force: true }),
      rm(path.join(projects, name, sessionId), { recursive: true, force: true }),
    ]),
  );
}
