/**
 * The smallest real workflow: reads a region's Top-K through an activity, after a
 * durable timer. Exercises Worker, activity and timer on the dev server, and is the
 * workflow whose recorded history the replay test guards.
 */
import { proxyActivities, sleep } from '@temporalio/workflow';
import type { Activities, RankedPost } from '../activities';

const { readTopK } = proxyActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 3 },
});

export interface SmokeInput {
  region: string;
  k: number;
}

export async function smokeWorkflow(input: SmokeInput): Promise<{ region: string; top: RankedPost[] }> {
  await sleep('10 milliseconds');
  const top = await readTopK(input.region, input.k);
  return { region: input.region, top };
}
