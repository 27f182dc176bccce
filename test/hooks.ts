// Global mocha hooks: no stub outlives its test, and an unhandled rejection fails the run.
import * as sinon from 'sinon';
import { DefaultLogger, Runtime } from '@temporalio/worker';

// Worker state transitions at INFO drown the test report; warnings and errors still show.
Runtime.install({ logger: new DefaultLogger('WARN') });

process.on('unhandledRejection', (reason) => {
  throw reason instanceof Error ? reason : new Error(`unhandled rejection: ${String(reason)}`);
});

export const mochaHooks = {
  afterEach(): void {
    sinon.restore();
  },
};
