import { expect } from 'chai';
import { FETCH_BAD_PORTS } from '../../src/config';
import { pickApiPort } from '../../scripts/harness/isolated';

/** What fetch says when asked for `port` (on an address that never answers): 'bad port', or another outcome. */
async function fetchRefusal(port: number): Promise<string> {
  try {
    await fetch(`http://192.0.2.1:${port}/`, { signal: AbortSignal.timeout(20) });
    return 'answered';
  } catch (e) {
    return String((e as Error & { cause?: Error }).cause?.message ?? (e as Error).name);
  }
}

describe('bench and test harness: the API port of a run', () => {
  it('never draws a port fetch refuses (two CI suites drew 3659 and timed out on GET /healthz)', () => {
    // Every draw over [0, 1) in steps finer than the range's: each port it can give.
    const drawn = new Set<number>();
    for (let i = 0; i < 8000; i++) drawn.add(pickApiPort(() => i / 8000));
    expect([...drawn].filter((p) => FETCH_BAD_PORTS.has(p))).to.deep.equal([]);
    expect(Math.min(...drawn)).to.equal(3100);
    expect(Math.max(...drawn)).to.equal(3899);
    expect(drawn.size).to.equal(799);
  });

  it('knows the ports fetch refuses: each listed one is refused, and its neighbours are not', async () => {
    for (const p of FETCH_BAD_PORTS) expect(await fetchRefusal(p), `port ${p}`).to.equal('bad port');
    for (const p of [3000, 3658, 3660, 8233, 9090]) expect(await fetchRefusal(p), `port ${p}`).to.not.equal('bad port');
  });
});
