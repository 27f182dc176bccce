/**
 * The per-region coordinator (an entity workflow, id `coordinator:<region>`): receives the
 * region's event-time watermark and earliest new event time (coalesced by the hot path to a
 * signal every few seconds),
 * starts a window workflow for each window the watermark enters, and forwards the
 * watermark to the windows not yet FINAL. Continues as new before its history grows large.
 */
import {
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  coordinatorStatusQuery,
  progressSignal,
  watermarkSignal,
  windowSearchAttributes,
  windowWorkflowId,
  type SessionSpecInput,
  type WindowSpecInput,
} from './definitions';
import type { windowWorkflow, WindowInput } from './window';
import type { Activities } from '../activities';
import { WINDOW_KEY_GRACE_MS, windowId } from '../keys';

// Local: one marker in history per call, run by the worker running this workflow (it has Redis).
const { sealSessions, countedWindows } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

// Visibility is an aid here, not a dependency: a few attempts, then the coordinator goes on.
const { runningWindows } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '5 seconds', maximumAttempts: 5 },
});

/** A watermark further ahead of the workflow's clock than this is ignored (a bad event time must not close every window). */
const MAX_WATERMARK_AHEAD_MS = 86_400_000;

export interface CoordinatorInput {
  region: string;
  specs: WindowSpecInput[];
  /** Session window specs: sealed by the watermark, each then a window workflow. */
  sessions?: SessionSpecInput[];
  /** Carried across continue-as-new. */
  state?: CoordinatorState;
}

interface CoordinatorState {
  watermark: number | null;
  /** Per spec: the start of the next window to start. */
  next: Record<string, number>;
  /**
   * Per spec: every window from this start on exists (this coordinator's lineage across
   * continue-as-new started it, or found it); windows before it are started when events in
   * them are reported later. A coordinator that adopted an earlier one's windows sets it at
   * its first step.
   */
  first?: Record<string, number>;
  /**
   * Windows not yet FINAL, with the watermarks that make them CLOSED and FINAL (entries
   * from before the threshold-signals patch have no closeAt: signalled every step).
   */
  live: { id: string; finalAt: number; closeAt?: number; closed?: boolean }[];
  /** Per session spec: the start of the last session whose window was started. */
  taken?: Record<string, number>;
  /** A report taken in during the last step, not yet stepped on (carried across continue-as-new). */
  unstepped?: { watermark: number | null; earliest: number | null };
}

/**
 * At most this many windows of one spec are started per watermark step: signals coalesce,
 * so one step may cross many windows, and each must exist (events may be in any of them);
 * only after a gap longer than this (a region silent for days) are the oldest skipped.
 */
const MAX_CATCH_UP = 2000;

export async function regionCoordinatorWorkflow(input: CoordinatorInput): Promise<void> {
  const st: CoordinatorState = input.state ?? { watermark: null, next: {}, live: [] };
  let pending: number | null = st.unstepped?.watermark ?? null;
  let earliest = st.unstepped?.earliest ?? Infinity;
  delete st.unstepped;
  setHandler(progressSignal, ({ watermark, earliest: e, specs, sessions }) => {
    if (watermark > Date.now() + MAX_WATERMARK_AHEAD_MS) {
      log.warn('ignoring a watermark far ahead of the clock', { watermark });
      return;
    }
    if ((st.watermark === null || watermark > st.watermark) && (pending === null || watermark > pending)) pending = watermark;
    if (e < earliest) earliest = e;
    // The reporting member's window specs: a changed HH_WINDOWS reaches a running coordinator.
    if (specs) input = { ...input, specs, sessions: sessions ?? [] };
  });
  setHandler(coordinatorStatusQuery, () => ({ watermark: st.watermark, live: st.live.map((l) => l.id) }));

  if (!input.state && patched('coordinator-adopts-running-windows')) await adoptRunning(input, st);
  // A new coordinator (not a continuation) first looks for windows whose keys hold counts that
  // no report named: a member killed after its flushes and before its first report leaves
  // them, and the member that takes its partitions over resumes after those events.
  let reconcile = !input.state;

  for (;;) {
    await condition(() => pending !== null);
    const wm = pending!;
    pending = null;
    st.watermark = wm;
    // The earliest event time reported up to here is this step's; one reported while the step
    // runs (its awaits let signals in) is the next step's. Before this patch the step's end
    // discarded those, and the reporter had already let them go: their windows never started.
    const keepLater = patched('coordinator-keeps-mid-step-earliest');
    const stepEarliest = earliest;
    if (keepLater) earliest = Infinity;
    // Since this patch a step's window starts (and then its signals) go out together: one
    // workflow task issues them all, where each awaited in turn took a task of its own, a
    // round trip through the server (a fresh region's first step: a dozen tasks).
    const together = patched('coordinator-commands-together');
    const starting: Promise<boolean>[] = [];
    for (const spec of input.specs) {
      // Tumbling windows start every size; sliding ones every slide.
      const step = spec.slideMs ?? spec.sizeMs;
      const current = Math.floor(wm / step) * step;
      // The first windows: every one that holds the earliest event seen (it may be behind the
      // watermark already; sliding windows overlap, so several hold it).
      const holdsEarliest = Math.floor((keepLater ? stepEarliest : earliest) / step) * step - (spec.sizeMs - step);
      const fresh = st.next[spec.name] === undefined;
      let from = st.next[spec.name] ?? Math.min(current, holdsEarliest);
      if (current - from > MAX_CATCH_UP * step) from = current - MAX_CATCH_UP * step;
      const first = (st.first ??= {});
      // Events reported after the first step may be older than every window started: a
      // member that took a partition over reports its watermark before reading its backlog.
      // Their windows hold counts only a window workflow persists and expires: start them too.
      const before = first[spec.name];
      if (before !== undefined && holdsEarliest < before && patched('coordinator-starts-earlier-windows')) {
        const lowest = Math.max(holdsEarliest, current - MAX_CATCH_UP * step);
        const covered = await startEarlier(input.region, spec, lowest, before, st, together);
        // `first` stays below only windows that all exist: one checked without counts may
        // get them later (from a member whose watermark lags), and a later report of its
        // events must find it below `first` to check it again.
        first[spec.name] = patched('coordinator-first-over-started-windows') ? covered : Math.min(before, lowest);
      }
      if (reconcile && patched('coordinator-reconciles-counted-windows')) {
        // Every window whose key may still exist (it expires ttl + grace after the window ends).
        const oldest = Math.floor((current - spec.sizeMs - spec.ttlMs - WINDOW_KEY_GRACE_MS) / step) * step;
        const lowest = Math.max(oldest, current - MAX_CATCH_UP * step);
        if (lowest < from) await startEarlier(input.region, spec, lowest, from, st, together);
      }
      for (let start = from; start <= current; start += step) {
        const id = windowWorkflowId(input.region, spec.name, start);
        const started = startWindow(id, { region: input.region, spec, start });
        if (together) starting.push(started);
        else await started;
        live(st, { id, closeAt: start + spec.sizeMs, finalAt: start + spec.sizeMs + spec.latenessMs });
      }
      if (fresh) first[spec.name] = from;
      // A coordinator that adopted an earlier one's windows (or continues one from before
      // `first` existed): every window from here on is started, so later reports of earlier
      // events start theirs too.
      else if (first[spec.name] === undefined && patched('coordinator-first-after-adoption')) first[spec.name] = from;
      st.next[spec.name] = current + step;
    }
    await Promise.all(starting);
    for (const sp of input.sessions ?? []) {
      const taken = (st.taken ??= {});
      for (const s of await sealSessions({ region: input.region, spec: sp, watermark: wm, after: taken[sp.name] ?? -1 })) {
        const id = windowWorkflowId(input.region, sp.name, s.start);
        const spec = { name: sp.name, sizeMs: s.end - s.start, latenessMs: sp.latenessMs, ttlMs: sp.ttlMs };
        await startWindow(id, { region: input.region, spec, start: s.start });
        live(st, { id, closeAt: s.end, finalAt: s.end + sp.latenessMs });
        taken[sp.name] = s.start;
      }
    }
    reconcile = false;
    const still: CoordinatorState['live'] = [];
    if (together) {
      // Only a watermark that moves a window on (to CLOSED, to FINAL) is signalled to it, and
      // every such signal of the step at once.
      const due = st.live.filter((w) => wm >= movesOnAt(w));
      const sent = await Promise.all(
        due.map((w) =>
          getExternalWorkflowHandle(w.id)
            .signal(watermarkSignal, wm)
            .then(
              () => true,
              (e: unknown) => {
                // Closed already (terminated by an operator): nothing to move on; the step goes on.
                log.warn('cannot signal a window; it is no longer followed', { id: w.id, error: String(e) });
                return false;
              },
            ),
        ),
      );
      const lost = new Set(due.filter((_, i) => !sent[i]));
      for (const w of due) if (!lost.has(w)) w.closed = true;
      for (const w of st.live) if (!lost.has(w) && wm < w.finalAt) still.push(w);
    } else if (patched('coordinator-threshold-signals')) {
      // Only a watermark that moves a window on (to CLOSED, to FINAL) is signalled to it: a
      // step costs a signal per window changing state, not per live window.
      for (const w of st.live) {
        if (wm >= movesOnAt(w)) {
          try {
            await getExternalWorkflowHandle(w.id).signal(watermarkSignal, wm);
          } catch (e) {
            // Closed already (terminated by an operator): nothing to move on; the step goes on.
            log.warn('cannot signal a window; it is no longer followed', { id: w.id, error: String(e) });
            continue;
          }
          w.closed = true;
        }
        if (wm < w.finalAt) still.push(w);
      }
    } else {
      for (const w of st.live) {
        await getExternalWorkflowHandle(w.id).signal(watermarkSignal, wm);
        if (wm < w.finalAt) still.push(w);
      }
    }
    st.live = still;
    if (!keepLater) earliest = Infinity;
    if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > 5000) {
      // What a signal during this step brought goes on to the next run (not lost with this one's handlers).
      const unstepped = { watermark: pending, earliest: Number.isFinite(earliest) ? earliest : null };
      await continueAsNew<typeof regionCoordinatorWorkflow>({ ...input, state: { ...st, unstepped } });
    }
  }
}

/**
 * Starts the windows of `spec` from `from` up to (not including) `before` that hold counts (a
 * sliding window: whose panes do). Only those: an event late for every window (one bad
 * timestamp) must not start hundreds of empty ones. Never one that already ran. Returns the
 * lowest start from which every window up to `before` now exists (started here or before).
 */
async function startEarlier(region: string, spec: WindowSpecInput, from: number, before: number, st: CoordinatorState, together: boolean): Promise<number> {
  const step = spec.slideMs ?? spec.sizeMs;
  const keysOf = (start: number): string[] => {
    if (!spec.slideMs || !spec.pane) return [windowId(spec.name, start)];
    const panes: string[] = [];
    for (let p = start; p < start + spec.sizeMs; p += spec.slideMs) panes.push(windowId(spec.pane, p));
    return panes;
  };
  const starts: number[] = [];
  for (let start = from; start < before; start += step) starts.push(start);
  const counted = new Set(await countedWindows({ region, ids: [...new Set(starts.flatMap(keysOf))] }));
  const exists = new Set<number>();
  const started: Promise<void>[] = [];
  for (const start of starts) {
    if (!keysOf(start).some((k) => counted.has(k))) continue;
    exists.add(start);
    const id = windowWorkflowId(region, spec.name, start);
    // One that exists already is left alone: this coordinator or an earlier one signals it, it
    // only waits for its TTL, or it completed (a signal to it would fail).
    const one = startWindow(id, { region, spec, start }, true).then((isNew) => {
      if (isNew) live(st, { id, closeAt: start + spec.sizeMs, finalAt: start + spec.sizeMs + spec.latenessMs });
    });
    if (together) started.push(one);
    else await one;
  }
  await Promise.all(started);
  let covered = before;
  while (covered - step >= from && exists.has(covered - step)) covered -= step;
  return covered;
}

/**
 * Starts a window workflow (abandoned: it outlives this run); false if it existed. One that
 * already runs (a coordinator before this one started it) is fine: it is signalled like the
 * others. `onlyIfNew`: not even one that already completed is started again.
 */
async function startWindow(id: string, args: WindowInput, onlyIfNew = false): Promise<boolean> {
  try {
    await startChild<typeof windowWorkflow>('windowWorkflow', {
      workflowId: id,
      args: [args],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      // A window started late never replaces one that already ran and completed.
      ...(onlyIfNew ? { workflowIdReusePolicy: 'REJECT_DUPLICATE' as const } : {}),
      // Visible by region from its start, not only once its first task ran (the window sets
      // the same itself): a window whose worker never ran it is still found by `Region = "NA"`.
      typedSearchAttributes: windowSearchAttributes(args.region, args.spec.name, args.start),
    });
    return true;
  } catch (e) {
    if (!(e instanceof WorkflowExecutionAlreadyStartedError)) throw e;
    return false;
  }
}

/** The watermark that moves a live window on: to CLOSED, then to FINAL (entries from before closeAt: every step). */
function movesOnAt(w: CoordinatorState['live'][number]): number {
  if (w.closeAt === undefined) return -Infinity;
  return w.closed ? w.finalAt : w.closeAt;
}

function live(st: CoordinatorState, w: CoordinatorState['live'][number]): void {
  if (!st.live.some((l) => l.id === w.id)) st.live.push(w);
}

/**
 * A coordinator without state may replace one that was terminated: the windows it had
 * started still run, waiting for watermarks that only a coordinator sends. Takes them on
 * (found through visibility by their search attributes), so each still closes and ends.
 */
async function adoptRunning(input: CoordinatorInput, st: CoordinatorState): Promise<void> {
  let running: Awaited<ReturnType<Activities['runningWindows']>> = [];
  try {
    running = await runningWindows({ region: input.region });
  } catch (e) {
    log.warn('cannot list the running windows; windows of an earlier coordinator may wait for their TTL', { error: String(e) });
  }
  for (const w of running) {
    if (w.state === 'FINAL' || w.state === 'EXPIRED') continue; // only their TTL is left, which they keep themselves
    const spec = input.specs.find((s) => s.name === w.spec);
    if (spec) {
      const step = spec.slideMs ?? spec.sizeMs;
      live(st, { id: w.id, closeAt: w.start + spec.sizeMs, finalAt: w.start + spec.sizeMs + spec.latenessMs, closed: w.state === 'CLOSED' });
      st.next[spec.name] = Math.max(st.next[spec.name] ?? -Infinity, w.start + step);
    } else {
      // A session: it was sealed only once the watermark had passed its end by a gap and the
      // lateness, so the next watermark makes it FINAL.
      live(st, { id: w.id, closeAt: 0, finalAt: 0, closed: w.state === 'CLOSED' });
    }
  }
}
