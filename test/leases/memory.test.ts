import { MemoryLeaseManager } from '../../src/backends/memory/lease-manager.js';
import { describeLeaseConformance } from '../../src/testing/index.js';

describeLeaseConformance('memory leases', async () => {
  // Memory leases live in one process: every manager of a test is that process's one instance.
  let shared: MemoryLeaseManager | undefined;
  return {
    async manager(clock) {
      shared ??= new MemoryLeaseManager({ clock });
      return shared;
    },
    async close() {},
  };
});
