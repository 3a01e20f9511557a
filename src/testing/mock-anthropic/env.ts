/**
 * The environment that points the Agent SDK's bundled CLI at a mock: the mock's URL as the API, a
 * placeholder key, and one "host's" CLAUDE_CONFIG_DIR. The caller's own ANTHROPIC_* and CLAUDE_*
 * variables are dropped so that nothing from the shell (a real key, another base URL) leaks in.
 */
export function mockModelEnv(
  mockUrl: string,
  configDir: string,
  options: {
    /** Let the CLI send title generation, HEAD /api/hello and telemetry. Default false. */
    nonessentialTraffic?: boolean;
    base?: Record<string, string | undefined>;
  } = {},
): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...(options.base ?? process.env) };
  for (const name of Object.keys(env)) {
    if (name.startsWith('ANTHROPIC_') || name.startsWith('CLAUDE_')) delete env[name];
  }
  env.ANTHROPIC_BASE_URL = mockUrl;
  env.ANTHROPIC_API_KEY = 'mock-key';
  env.CLAUDE_CONFIG_DIR = configDir;
  if (!options.nonessentialTraffic) env.CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = '1';
  return env;
}
