/**
 * A fix for kafkajs 2.2.4's request queue, applied to its class once (clients.ts does it
 * on load, before any client exists).
 *
 * The defect: after every check of its pending requests (one per response) a broker
 * connection's queue arms a timer for the next check, also when nothing is pending and
 * nothing is throttled. Its throttle mark is then in the past, so the delay is negative and
 * the timer fires at once: each open connection runs a check about every millisecond for
 * as long as it is open (tulios/kafkajs#1556, #1704; no upstream release fixes it). Here an
 * idle API process spent more than half of its busy CPU on those timers, and every worker
 * and API process holds several connections.
 *
 * The fixed rule: a check is armed only while requests wait — at the end of a throttle, or
 * after kafkajs's own 10 ms when they wait for an in-flight slot (a response also checks).
 * A request that arrives later is sent at once or arms its own check.
 */
import { version as kafkajsVersion } from 'kafkajs/package.json';

/** The fields and methods of kafkajs's RequestQueue the rule uses. */
interface RequestQueueInternals {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

/** kafkajs's interval between checks while requests wait for an in-flight slot (ms). */
const WAITING_CHECK_MS = 10;

/** The version whose queue this fixes: another one must be read again before the fix applies. */
const FIXED_KAFKAJS_VERSION = '2.2.4';

function scheduleCheckWhileWaiting(this: RequestQueueInternals): void {
  if (this.throttleCheckTimeoutId !== null || this.pending.length === 0) return;
  const throttledFor = this.throttledUntil - Date.now();
  this.throttleCheckTimeoutId = setTimeout(
    () => {
      this.throttleCheckTimeoutId = null;
      this.checkPendingRequests();
    },
    throttledFor > 0 ? throttledFor : WAITING_CHECK_MS,
  );
}

/** The RequestQueue class kafkajs uses (its module, as kafkajs itself loads it). */
export function kafkajsRequestQueue(): { prototype: RequestQueueInternals } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('kafkajs/src/network/requestQueue') as { prototype: RequestQueueInternals };
}

/** Applies the rule to kafkajs's RequestQueue (again: the same); throws on a kafkajs version it was not written for. */
export function fixKafkajsRequestQueue(): void {
  if (kafkajsVersion !== FIXED_KAFKAJS_VERSION) {
    throw new Error(`src/kafka-request-queue.ts fixes kafkajs ${FIXED_KAFKAJS_VERSION}'s request queue; kafkajs is ${kafkajsVersion}: read its queue again`);
  }
  const { prototype } = kafkajsRequestQueue();
  if (typeof prototype.scheduleCheckPendingRequests !== 'function' || typeof prototype.checkPendingRequests !== 'function') {
    throw new Error('kafkajs RequestQueue has no scheduleCheckPendingRequests/checkPendingRequests: read its queue again');
  }
  prototype.scheduleCheckPendingRequests = scheduleCheckWhileWaiting;
}
