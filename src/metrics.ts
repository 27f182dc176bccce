/** Prometheus metrics of one worker process (the cluster primary aggregates them for GET /metrics). */
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // The heap right after each full collection: what is really live (heap in use between
  // collections is mostly garbage waiting, a sawtooth).
  const heapLive = new Gauge({ name: 'hh_heap_live_bytes', help: 'V8 heap in use right after the last full garbage collection', registers: [registry] });
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      // kind 4: NODE_PERFORMANCE_GC_MAJOR (mark-sweep-compact)
      if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === 4) heapLive.set(getHeapStatistics().used_heap_size); // process.memoryUsage()'s heapUsed, without reading the RSS from /proc
    }
  }).observe({ entryTypes: ['gc'] });
  return {
    heapLive,
    registry,
    consumed: new Counter({ name: 'hh_events_consumed_total', help: 'Kafka records read by the ingest activity', registers: [registry] }),
    applied: new Counter({ name: 'hh_events_applied_total', help: 'Events counted into Redis', registers: [registry] }),
    deadLettered: new Counter({
      name: 'hh_events_dead_lettered_total',
      help: 'Records sent to the dead-letter topic, by kind of reason',
      labelNames: ['kind'],
      registers: [registry],
    }),
    deduplicated: new Counter({
      name: 'hh_events_deduplicated_total',
      help: 'Events skipped because their event_id was already counted',
      registers: [registry],
    }),
    sessionRefused: new Counter({
      name: 'hh_session_events_refused_total',
      help: 'Events not added to a session window because it was sealed between triage and flush (still counted all-time and in other windows)',
      registers: [registry],
    }),
    windowRefused: new Counter({
      name: 'hh_window_events_refused_total',
      help: 'Events not added to a tumbling window because it turned FINAL between triage and flush (its final snapshot was being taken; still counted all-time and in other windows)',
      registers: [registry],
    }),
    late: new Counter({
      name: 'hh_events_late_total',
      help: "Events beyond a window's allowed lateness (sent to the late topic; still counted all-time)",
      registers: [registry],
    }),
    keyMismatch: new Counter({
      name: 'hh_events_key_mismatch_total',
      help: 'Events whose Kafka key names another region than their region_id (counted under region_id)',
      registers: [registry],
    }),
    fenced: new Counter({ name: 'hh_events_fenced_total', help: 'Redelivered events skipped by the per-partition offset fence', registers: [registry] }),
    flushSeconds: new Histogram({
      name: 'hh_flush_duration_seconds',
      help: 'One region actor flush (one atomic Redis step)',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    flushScriptSeconds: new Histogram({
      name: 'hh_flush_script_seconds',
      help: 'How long one flush script held Redis (its own clock; every other client waits meanwhile)',
      buckets: [0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5],
      registers: [registry],
    }),
    flushRetries: new Counter({
      name: 'hh_flush_retries_total',
      help: 'Flush scripts called again without the events they found fenced or already seen (redeliveries, re-sends)',
      registers: [registry],
    }),
    backpressureSeconds: new Counter({
      name: 'hh_backpressure_seconds_total',
      help: 'Time region actors waited for a checkpoint to take their pending changes (the record fell behind)',
      registers: [registry],
    }),
    checkpointed: new Counter({ name: 'hh_checkpoint_entries_total', help: 'Counts written to the Cassandra record by checkpoints', registers: [registry] }),
    checkpointFailures: new Counter({
      name: 'hh_checkpoint_failures_total',
      help: 'Checkpoint rounds that failed (Cassandra unavailable)',
      registers: [registry],
    }),
    checkpointSeconds: new Histogram({
      name: 'hh_checkpoint_duration_seconds',
      help: 'One checkpoint round of every changed region',
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    failures: new Counter({
      name: 'hh_background_failures_total',
      help: 'Failed background steps that are retried or made good later (each also logged), by operation',
      labelNames: ['operation'],
      registers: [registry],
    }),
    coordinatorSignals: new Counter({
      name: 'hh_coordinator_signals_total',
      help: 'Watermark reports signalled to region coordinators: only moves that start, close or finalize a window, or that name earlier events',
      registers: [registry],
    }),
    workflowRestarts: new Counter({
      name: 'hh_workflow_restarts_total',
      help: 'Long-running workflows (ingest supervisor, global merge) found stopped and started again',
      labelNames: ['workflow'],
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'hh_api_rate_limited_total',
      help: 'API requests refused with 429 (a client over its rate limit)',
      registers: [registry],
    }),
    applyDelay: new Histogram({
      name: 'hh_event_apply_delay_seconds',
      help: 'From an event timestamp (its producer clock) to the event counted in Redis; late events included',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
    checkpointLastSuccess: new Gauge({
      name: 'hh_checkpoint_last_success_timestamp_seconds',
      help: 'When a checkpoint to the Cassandra record last succeeded (the oldest over the workers)',
      // Over the workers: the one that checkpointed longest ago is the one to worry about.
      aggregator: 'min',
      registers: [registry],
    }),
    windowsOverdue: new Gauge({
      name: 'hh_windows_overdue',
      help: 'Windows not FINAL (nor EXPIRED) more than HH_WINDOW_OVERDUE after their end plus allowed lateness, per window spec (Temporal visibility)',
      labelNames: ['spec'],
      aggregator: 'max',
      registers: [registry],
    }),
    lag: new Gauge({
      name: 'hh_consumer_lag_records',
      help: 'Records behind the high watermark, per partition, after the last batch',
      labelNames: ['topic', 'partition'],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
