/** The primary's join gate: a runtime's ingest members join the consumer group together (src/runtime/join-gate.ts). */
import { expect } from 'chai';
import * as sinon from 'sinon';
import { JoinGate } from '../../src/runtime/join-gate';

describe('join gate (the cluster primary)', () => {
  let clock: sinon.SinonFakeTimers;
  beforeEach(() => (clock = sinon.useFakeTimers()));
  afterEach(() => clock.restore());

  /** A gate over `slots` slots; `released` lists the slots let go, in order. */
  const gateOf = (slots: number) => {
    const released: number[] = [];
    const logged: string[] = [];
    const gate = new JoinGate({ slots, waitMs: 10_000, log: (l) => logged.push(l) });
    const arrive = (slot: number) => gate.arrive(slot, () => released.push(slot));
    return { gate, released, logged, arrive };
  };

  it('holds the first members until the last slot asks, then lets them all go together', () => {
    const { released, logged, arrive } = gateOf(3);
    arrive(2);
    clock.tick(3_000);
    arrive(1);
    clock.tick(4_000);
    expect(released).to.deep.equal([]);
    arrive(3);
    expect(released).to.deep.equal([2, 1, 3]);
    expect(logged).to.deep.equal(['ingest slots 1,2,3 may join the group (every slot is ready, after 7000 ms)']);
    clock.tick(20_000);
    expect(released, 'the bound does not fire again').to.have.length(3);
  });

  it('lets the waiting go once the first has waited the bound, naming the slots not ready', () => {
    const { released, logged, arrive } = gateOf(3);
    arrive(1);
    clock.tick(4_000);
    arrive(3);
    clock.tick(5_999);
    expect(released).to.deep.equal([]);
    clock.tick(1);
    expect(released).to.deep.equal([1, 3]);
    expect(logged).to.deep.equal(['ingest slots 1,3 may join the group (the wait ran out, after 10000 ms); not ready: slot 2']);
    // The late one, when it comes, goes at once: the others joined (or are joining) already.
    arrive(2);
    expect(released).to.deep.equal([1, 3, 2]);
  });

  it('lets a member restarted beside running ones go at once, and an ask retried in the same process', () => {
    const { gate, released, logged, arrive } = gateOf(3);
    arrive(1);
    arrive(3);
    arrive(2);
    expect(released).to.deep.equal([1, 3, 2]);
    // Slot 2's process dies and restarts: slots 1 and 3 were let go, so it waits for nobody.
    gate.left(2);
    arrive(2);
    expect(released).to.deep.equal([1, 3, 2, 2]);
    expect(logged[1]).to.match(/^ingest slot 2 may join the group \(every slot is ready, after 0 ms\)$/);
    // Slot 1's ingest activity is retried in the same process: it asks again and goes at once.
    arrive(1);
    expect(released).to.deep.equal([1, 3, 2, 2, 1]);
    clock.tick(20_000);
    expect(released, 'no bound fires afterwards').to.have.length(5);
  });

  it('does not count a member whose process is gone; its restart asks again', () => {
    const { gate, released, arrive } = gateOf(2);
    arrive(1);
    gate.left(1);
    arrive(2);
    expect(released, 'slot 1 left: slot 2 waits for its restart').to.deep.equal([]);
    arrive(1);
    expect(released).to.deep.equal([2, 1]);
    // Both let go; slot 1's process dies before it consumes: its restart waits for nobody (slot 2 was let go).
    gate.left(1);
    arrive(1);
    expect(released).to.deep.equal([2, 1, 1]);
  });

  it('a single slot goes at once; close() stops the bound', () => {
    const one = gateOf(1);
    one.arrive(1);
    expect(one.released).to.deep.equal([1]);
    const two = gateOf(2);
    two.arrive(1);
    two.gate.close();
    clock.tick(60_000);
    expect(two.released).to.deep.equal([]);
  });
});
