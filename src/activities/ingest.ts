/** The ingest activity: this process's Kafka consumer-group member (ingest/consumer.ts), under a supervising workflow. */
import { Context } from '@temporalio/activity';
import { runIngest, type IngestDeps, type IngestProgress } from '../ingest/consumer';
import { missing } from './errors';

export interface IngestActivityDeps extends IngestDeps {
  /** Aborts when the process shuts down, so the ingest drains and returns. */
  shutdown: AbortSignal;
}

/** How often the running ingest heartbeats its progress. @default 2 s — well inside the heartbeat timeout. */
const HEARTBEAT_EVERY_MS = 2_000;

export function ingestActivities(deps: IngestActivityDeps | undefined) {
  return {
    /**
     * Long-running: heartbeats its progress; returns when the process shuts down (drained),
     * throws if the consumer crashes (the supervising workflow's retry policy restarts it).
     * Cancellation (its workflow terminated, say) also drains it.
     */
    async ingest(): Promise<IngestProgress> {
      if (!deps) missing('ingest', 'its hot-path dependencies');
      const ctx = Context.current();
      const stop = new AbortController();
      const onShutdown = () => stop.abort();
      deps.shutdown.addEventListener('abort', onShutdown, { once: true });
      ctx.cancelled.catch(() => stop.abort()); // a cancellation is how this ends: drain
      let progress: IngestProgress = { batches: 0, consumed: 0, deadLettered: 0 };
      ctx.heartbeat(progress);
      const beat = setInterval(() => ctx.heartbeat(progress), HEARTBEAT_EVERY_MS);
      try {
        return await runIngest({ ...deps, run: ctx.info.workflowExecution?.runId }, stop.signal, (p) => (progress = p));
      } finally {
        clearInterval(beat);
        deps.shutdown.removeEventListener('abort', onShutdown);
      }
    },
  };
}
