import { expect } from 'chai';
import { Redis } from 'ioredis';
import { type Client } from '@temporalio/client';
import { cfg, unique } from '../helpers';
import { regionTopKey } from '../../src/keys';
import { createWorker } from '../../src/worker';
import { temporalWorkerConnection, temporalClient, opsRedis } from '../../src/clients';
import { smokeWorkflow } from '../fixtures/workflows';
import { SMOKE_WORKFLOWS_PATH, smokeActivities } from '../fixtures/smoke-activities';
import { SEARCH_ATTRIBUTES } from '../../src/bootstrap/temporal';

describe('temporal (dev server)', function () {
  this.timeout(120_000);
  let redis: Redis;
  let client: Client;
  const region = unique('tmp_region');

  before(async () => {
    redis = opsRedis(cfg);
    client = await temporalClient(cfg);
  });
  after(async () => {
    await redis.del(regionTopKey(region));
    redis.disconnect();
    await client.connection.close();
  });

  it('has the custom search attributes registered', async () => {
    const res = await client.connection.operatorService.listSearchAttributes({ namespace: cfg.temporal.namespace });
    for (const name of Object.keys(SEARCH_ATTRIBUTES)) expect(res.customAttributes).to.have.property(name);
  });

  it('runs a workflow on a real Worker, its activity reading Redis', async () => {
    await redis.zadd(regionTopKey(region), 7, 'a', 9, 'b', 1, 'c');
    const taskQueue = unique('tq');
    const connection = await temporalWorkerConnection(cfg);
    const worker = await createWorker({ cfg, connection, taskQueue, activities: smokeActivities(redis), workflowsPath: SMOKE_WORKFLOWS_PATH });
    const workflowId = unique('smoke');
    try {
      const result = await worker.runUntil(client.workflow.execute(smokeWorkflow, { taskQueue, workflowId, args: [{ region, k: 2 }] }));
      expect(result).to.deep.equal({
        region,
        top: [
          { post_id: 'b', view_count: 9 },
          { post_id: 'a', view_count: 7 },
        ],
      });
    } finally {
      await connection.close();
    }
    const desc = await client.workflow.getHandle(workflowId).describe();
    expect(desc.status.name).to.equal('COMPLETED');
  });
});
