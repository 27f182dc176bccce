import { expect } from 'chai';
import { markdown, ratios, type BenchResults } from '../../bench/report';

/** A report's figures, as a bench run without the optional phases writes them. */
function results(over: Partial<BenchResults> = {}): BenchResults {
  const fresh = { p50: 100, p99: 400, max: 500, probes: 100, rate_eps: 10_000 };
  return {
    when: '2026-12-03T00:00:00.000Z',
    smoke: false,
    machine: { cpus: 2, model: 'x', mem_gib: 24, node: 'v20' },
    events: 500_000,
    ingest: { limit_eps: 300_000, ours_eps: 60_000, naive_eps: 40_000, naive_pipelined_eps: 50_000, naive_events: 100_000, exact: true, kstreams_eps: NaN },
    freshness_ms: { ...fresh, at_quarter_rate: { ...fresh } },
    api: {
      rps: 1000,
      p50_ms: 5,
      p99_ms: 50,
      at_2000_rps: { rps: 1000, p50_ms: 5, p99_ms: 50, p99_runs_ms: [50, 50, 50] },
      limit_rps: 2000,
      limit_p50_ms: 3,
      limit_p99_ms: 40,
      limit_at_2000_rps: { rps: 2000, p50_ms: 3, p99_ms: 40, p99_runs_ms: [40, 40, 40] },
      body_bytes: 900,
    },
    memory: {},
    scaling: { workers_1_eps: 40_000, workers_2_eps: 60_000, speedup: 1.5, cpu_s_per_100k_events: {}, redis_us_per_event: {} },
    seconds: 100,
    ...over,
  };
}

describe('bench report: what a run says about the machine it ran on', () => {
  it('gives the steal of each phase, and beside ours / naive pipelined the steal of both runs', () => {
    const r = results({ steal_pct: { naive_pipelined: 1.5, ours: 12.3, api: 0 } });
    expect(ratios(r)['ours / naive pipelined (target ≥ 1.0)']).to.equal('1.2 — met (steal 12.3 % and 1.5 %)');
    expect(markdown(r, ratios(r))).to.include('naive_pipelined 1.5 %, ours 12.3 %, api 0 %.');
  });

  it('says nothing of steal for a report written before it was measured', () => {
    const r = results();
    expect(ratios(r)['ours / naive pipelined (target ≥ 1.0)']).to.equal('1.2 — met');
    expect(markdown(r, ratios(r))).not.to.include('Steal');
  });

  it('gives both naive pipelined runs around ours beside the one ours is held against', () => {
    const base = results();
    const r = results({ ingest: { ...base.ingest, naive_pipelined_eps: 50_000, naive_pipelined_runs_eps: [50_000, 46_000] } });
    expect(markdown(r, ratios(r))).to.include('the faster of a run just before (b) and one after (e) (50,000, 46,000)');
    expect(ratios(r)['ours / naive pipelined (target ≥ 1.0)']).to.match(/^1\.2 — met/);
  });

  it('flags a freshness run whose background load fell short of the rate it was asked for', () => {
    const fresh = { p50: 100, p99: 400, max: 500, probes: 100 };
    const r = results({
      freshness_ms: { ...fresh, rate_eps: 8_217, asked_eps: 28_000, at_quarter_rate: { ...fresh, rate_eps: 13_000, asked_eps: 14_000 } },
    });
    const md = markdown(r, ratios(r));
    expect(md).to.include('at 8,217 events/s (asked for 28,000: the load fell short), 100 probes');
    // Within 10 % of the asked rate: no flag.
    expect(md).to.include('at 13,000 events/s, 100 probes');
  });

  it('holds the soak to ±10 % of one level over its second half: max ÷ min at most 1.1 / 0.9', () => {
    const soak = (ratio: number) => {
      const mode = (m: 'exact' | 'bounded') => ({
        mode: m,
        minutes: 10,
        rate_eps: 5000,
        events: 3_000_000,
        samples: [],
        redis_used_bytes_ratio: ratio,
        worker_heap_ratio: 1.05,
      });
      return results({ soak: { redis_used_bytes_ratio: ratio, worker_heap_ratio: 1.05, exact: mode('exact'), bounded: mode('bounded') } });
    };
    const key = 'soak: Redis used_memory max/min, second half (target ±10 %: ≤ 1.22)';
    // 108 and 132 are both within 10 % of 120.
    expect(ratios(soak(1.22))[key]).to.equal('1.22 — met');
    // 100 and 125 are not both within 10 % of any one level.
    expect(ratios(soak(1.25))[key]).to.equal('1.25 — NOT met');
  });

  it('holds the longest script to 50 ms by the calls counted over it, not by the rounded maximum', () => {
    const phase = (ms: number, over: number) => ({
      mode: 'bounded' as const,
      distinct: 1_000_000,
      events: 1_000_000,
      redis_used_bytes: 0,
      exact_topk_bytes: 0,
      bounded_topk_bytes: 0,
      window_bytes: 0,
      dedup_bytes: 0,
      worker_rss_bytes: 0,
      longest_script_ms: ms,
      scripts_over_50ms: over,
    });
    const key = 'longest script, memory phases (target ≤ 50 ms)';
    expect(ratios(results({ memory: { bounded_1000000: phase(47, 0) } }))[key]).to.equal('47 ms — met');
    // 50.3 ms is rounded to 50 in longest_script_ms; the count says it was over.
    expect(ratios(results({ memory: { bounded_1000000: phase(50, 1) } }))[key]).to.equal('50 ms, 1 call(s) over 50 ms — NOT met');
  });
});
