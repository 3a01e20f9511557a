// Reads vitest's JSON report and fails if any test was skipped: under CI every backend's tests
// must run. Prints a plain "N passed, N failed" closing line.
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? 'reports/vitest.json';
const report = JSON.parse(readFileSync(file, 'utf8'));
const skipped = [];
let passed = 0;
let failed = 0;
for (const suite of report.testResults) {
  for (const test of suite.assertionResults) {
    if (test.status === 'passed') passed++;
    else if (test.status === 'failed') failed++;
    else skipped.push(`${suite.name}: ${test.fullName} (${test.status})`);
  }
}
if (skipped.length > 0) {
  console.error(`${skipped.length} tests did not run under CI:`);
  for (const line of skipped) console.error(`  ${line}`);
}
console.log(`vitest: ${passed} passed, ${failed} failed, ${skipped.length} skipped`);
process.exit(failed > 0 || skipped.length > 0 || passed === 0 ? 1 : 0);
