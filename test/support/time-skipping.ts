/** Temporal's time-skipping test server (the stack's installed one), with the project's search attributes. */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig } from '../../src/config';
import { testServerWrapper } from '../../scripts/stack/services';
import { SEARCH_ATTRIBUTES } from '../../src/bootstrap/temporal';

export async function timeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: testServerWrapper(loadConfig()) } },
  });
  await env.connection.operatorService.addSearchAttributes({ namespace: env.namespace ?? 'default', searchAttributes: SEARCH_ATTRIBUTES });
  return env;
}
