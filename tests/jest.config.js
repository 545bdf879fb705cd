// One jest run for the whole repo: unit tests (may stub) and end-to-end tests (real services).
/** @type {import('jest').Config} */
module.exports = {
  rootDir: __dirname,
  testMatch: ['<rootDir>/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: {
          target: 'es2022',
          parser: { syntax: 'typescript', decorators: true },
          transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
        },
        module: { type: 'commonjs' },
      },
    ],
  },
  // Node's, naming each test file's handles left open (tests/support/leak-check-env.js)
  testEnvironment: '<rootDir>/support/leak-check-env.js',
  globalSetup: '<rootDir>/support/global-setup.js',
  globalTeardown: '<rootDir>/support/global-teardown.js',
  // e2e suites start real services; two workers fit the 2-core machines this runs on
  maxWorkers: 2,
  testTimeout: 60_000,
  reporters: ['default', '<rootDir>/support/summary-reporter.js'],
};
