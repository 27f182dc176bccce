import { expect } from 'chai';
import { createMetrics } from '../../src/metrics';

describe('metric names follow the Prometheus conventions', () => {
  it('hh_ prefix, snake_case, counters end in _total, durations and sizes carry their unit, labels are few and fixed', async () => {
    const m = createMetrics();
    const ours = (await m.registry.getMetricsAsJSON()).filter((x) => x.name.startsWith('hh_'));
    expect(ours.length).to.be.above(15);
    for (const x of ours) {
      expect(x.name, x.name).to.match(/^hh_[a-z0-9_]+$/);
      if (String(x.type) === 'counter') expect(x.name, `${x.name}: a counter`).to.match(/_total$/);
      else expect(x.name, `${x.name}: only counters end in _total`).to.not.match(/_total$/);
      if (String(x.type) === 'histogram') expect(x.name, `${x.name}: a histogram of a unit`).to.match(/_(seconds|bytes)$/);
      if (/duration|delay|age/.test(x.name)) expect(x.name, `${x.name}: a time`).to.match(/_seconds(_total)?$/);
    }
    // Labels: only these, each with a bounded set of values (never an id, a post or a region).
    const labels = new Set(
      m.registry
        .getMetricsAsArray()
        .filter((x) => x.name.startsWith('hh_'))
        .flatMap((x) => (x as unknown as { labelNames: string[] }).labelNames),
    );
    expect([...labels].sort()).to.deep.equal(['kind', 'operation', 'partition', 'spec', 'topic', 'workflow']);
  });
});
