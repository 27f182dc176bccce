import { expect } from 'chai';
import { assess, HEALTH_SETTINGS, type HealthInputs } from '../../src/runtime/health';
import type { SlotStatus } from '../../src/runtime/ipc';

const up = { up: true, version: '1', error: null, ms: 1 };
const slot = (n: number, state: 'consuming' | 'stopped' | 'starting', pid: number | null = 100 + n): SlotStatus => ({
  slot: n,
  pid,
  ingest: { state, partitions: state === 'consuming' ? [n] : [], lastBatchAt: 1, epoch: 'e', run: 'r' },
  reportedAt: 1,
});
const fine = (): HealthInputs => ({
  dependencies: { redis: up, kafka: up, cassandra: up, temporal: up },
  slots: [slot(1, 'consuming'), slot(2, 'consuming')],
  lag: { total: 0, partitions: { '0': 0 } },
  lagSamples: [0, 0, 0],
  redisState: { epoch: 'e', recovery: null },
});

describe('health assessment', () => {
  it('is ok when every server is up, every slot consumes, lag is flat and Redis is caught up', () => {
    const r = assess(fine());
    expect(r.status).to.equal('ok');
    expect(r.problems).to.deep.equal([]);
    expect(r.ingest.slots.map((s) => s.state)).to.deep.equal(['consuming', 'consuming']);
  });

  it('says when a slot is not ingesting (its supervisor was terminated, its process restarting)', () => {
    const r = assess({ ...fine(), slots: [slot(1, 'stopped'), slot(2, 'consuming', null)] });
    expect(r.status).to.equal('degraded');
    expect(r.problems).to.deep.equal(['worker slot 1 is not ingesting (stopped)', 'worker slot 2 is not ingesting (restarting)']);
  });

  it('lists the lifecycle processes, and says when one is not running (restarting)', () => {
    const lifecycle = (n: number, pid: number | null): SlotStatus => ({ slot: n, pid, ingest: null, reportedAt: null, lifecycle: true });
    const ok = assess({ ...fine(), slots: [...fine().slots!, lifecycle(1, 300)] });
    expect(ok.status).to.equal('ok');
    expect(ok.ingest.slots.map((s) => s.slot)).to.deep.equal([1, 2]);
    expect(ok.lifecycle).to.deep.equal([{ process: 1, pid: 300, state: 'running' }]);
    const down = assess({ ...fine(), slots: [...fine().slots!, lifecycle(1, null)] });
    expect(down.status).to.equal('degraded');
    expect(down.problems).to.deep.equal(['lifecycle process 1 is not running (restarting): windows, the global merge and the ingest supervisors wait for it']);
    expect(assess(fine()).lifecycle).to.deep.equal([]); // the workers run the workflows
  });

  it('says when consumer lag grows sample after sample, not when it merely is high once', () => {
    const n = HEALTH_SETTINGS.lagGrowingSamples;
    const rising = Array.from({ length: n }, (_, i) => 5000 + i * 1000);
    expect(assess({ ...fine(), lagSamples: rising }).problems[0]).to.match(/lag is growing/);
    expect(assess({ ...fine(), lagSamples: [...rising.slice(0, -1), 5000] }).status).to.equal('ok');
    expect(assess({ ...fine(), lagSamples: rising.slice(1) }).status).to.equal('ok'); // too short a history
  });

  it('is down without Redis, degraded without another server, and says a rebuild is being replayed', () => {
    expect(assess({ ...fine(), dependencies: { ...fine().dependencies, redis: { ...up, up: false, error: 'refused' } } }).status).to.equal('down');
    const t = assess({ ...fine(), dependencies: { ...fine().dependencies, temporal: { ...up, up: false, error: 'temporal: no answer within 1000 ms' } } });
    expect(t.status).to.equal('degraded');
    expect(t.problems).to.deep.equal(['temporal is down: temporal: no answer within 1000 ms']);
    const rec = assess({ ...fine(), redisState: { epoch: 'e2', recovery: { epoch: 'e2', at: 0, as_of: 0, partitions: [3, 5] } } });
    expect(rec.status).to.equal('degraded');
    expect(rec.recovery!.partitions).to.deep.equal([3, 5]);
    expect(assess({ ...fine(), redisState: { epoch: null, recovery: null } }).problems).to.deep.equal([
      'Redis lost its state: answers come from the record until it is rebuilt',
    ]);
  });
});
