// Checks the built package the way a user imports it: the root entry and the mock entry load
// from dist/ by their package names, a store round-trips, and the mock answers.
import { createRequire } from 'node:module';

const { openBackend, openHub, SessionHubError } = await import('sessionhub');
const { startMockAnthropic, mockModelEnv } = await import('sessionhub/testing/mock-anthropic');

const backend = await openBackend('memory:');
await backend.store.append({ projectKey: 'p', sessionId: 's' }, [{ type: 'x', uuid: '1' }]);
const loaded = await backend.store.load({ projectKey: 'p', sessionId: 's' });
if (loaded?.length !== 1) throw new Error('the built store did not round-trip');
await backend.close();

const hub = await openHub('memory:');
const session = await hub.create({ tenant: 't', owner: 'o' }, { title: 'smoke' });
if ((await hub.get({ tenant: 't', owner: 'o' }, session.id)).title !== 'smoke') {
  throw new Error('the built hub did not keep a record');
}
await hub.close();

const mock = await startMockAnthropic();
const response = await fetch(`${mock.url}/nothing-here`);
if (response.status !== 404) throw new Error(`mock answered ${response.status}, expected 404`);
await mock.close();
if (typeof mockModelEnv !== 'function' || typeof SessionHubError !== 'function') {
  throw new Error('an export is missing from the built package');
}
const loadedDrivers = Object.keys(createRequire(import.meta.url).cache).filter((f) =>
  /node_modules\/(pg|ioredis)\//.test(f),
);
if (loadedDrivers.length > 0)
  throw new Error(`drivers loaded without being used: ${loadedDrivers}`);
console.log('dist smoke test: ok');
