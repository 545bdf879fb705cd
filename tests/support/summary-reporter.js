// Prints the plain closing line CI reads ("tests: N passed, N failed, N skipped"), since jest's own
// summary is not one of its formats. "failed" counts every failure jest counts, not only failed
// assertions in tests: a suite that did not load, an error in a hook such as afterAll, an unhandled
// error, a failed run; so the line says "0 failed" only when jest exits 0.

/** The line's numbers for jest's aggregated results. */
function summarize(results) {
  let failed = results.numFailedTests;
  for (const suite of results.testResults ?? []) {
    // failures outside any test (load error, hooks, unhandled errors) fail the suite without a failing test
    if (suite.testExecError || (suite.failureMessage && suite.numFailingTests === 0)) failed++;
  }
  if (results.runExecError) failed++;
  // what jest's exit status is made of (@jest/core TestScheduler); results.success is not set yet here
  const jestFails = results.numFailedTests > 0 || results.numRuntimeErrorTestSuites > 0 || results.snapshot?.failure || !!results.runExecError;
  if (jestFails && failed === 0) failed = 1;
  return { passed: results.numPassedTests, failed, skipped: results.numPendingTests + results.numTodoTests };
}

const line = (s) => `tests: ${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`;

class SummaryReporter {
  onRunComplete(_contexts, results) {
    const s = summarize(results);
    // the global teardown's leak check may still fail the run; it prints the line again then
    globalThis.__UVE_SUMMARY__ = s;
    process.stderr.write(`\n${line(s)}\n`);
  }
}
module.exports = SummaryReporter;
module.exports.summarize = summarize;
module.exports.line = line;
