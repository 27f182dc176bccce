/** The running activity's heartbeat, for the stores' long steps to call at every page. */
import { Context } from '@temporalio/activity';

/** Captured when the activity starts (a store calls it later, from its own promises). */
export function heartbeat(): () => void {
  const ctx = Context.current();
  return () => ctx.heartbeat();
}
