/** An ingest worker's checkpoint rounds: one at a time, timed and on request, and a stop that waits for the one in flight (src/runtime/checkpoint-schedule.ts). */
import { expect } from 'chai';
import * as sinon from 'sinon';
import { CheckpointSchedule } from '../../src/runtime/checkpoint-schedule';

type Timed = { written: number | null; lastOk: number | null };
/** What a round settles with: a timed round's outcome, or the entries `all` wrote. */
type Outcome = Timed | number;

/** A round the test settles by hand. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('checkpoint schedule (an ingest worker)', () => {
  let clock: sinon.SinonFakeTimers;
  beforeEach(() => (clock = sinon.useFakeTimers()));
  afterEach(() => clock.restore());

  /** Rounds that stay pending until settled; `calls` lists them in order ('timed' | 'all'). */
  const scheduleOf = () => {
    const calls: string[] = [];
    const pending: { kind: string; d: ReturnType<typeof deferred<Outcome>> }[] = [];
    const logged: string[] = [];
    const done: (number | null)[] = [];
    let failures = 0;
    const round = (kind: string) => {
      calls.push(kind);
      const d = deferred<Outcome>();
      pending.push({ kind, d });
      return d.promise;
    };
    const s = new CheckpointSchedule(
      { timed: () => round('timed') as Promise<Timed>, all: () => round('all') as Promise<number> },
      { done: (written) => done.push(written), failed: () => failures++ },
      (l) => logged.push(l),
    );
    return { s, calls, pending, logged, done, failures: () => failures };
  };
  const settle = async () => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };

  it('stop() waits for the round in flight, then runs the last round, and starts no other', async () => {
    const { s, calls, pending, logged } = scheduleOf();
    s.start(1_000);
    clock.tick(1_000);
    expect(calls).to.deep.equal(['timed']);
    s.request(); // asked while the timed round runs: would run again after it
    let stopped = false;
    const stopping = s.stop().then(() => (stopped = true));
    await settle();
    expect(calls, 'the last round waits for the one in flight').to.deep.equal(['timed']);
    pending[0].d.resolve({ written: 3, lastOk: 1 });
    await settle();
    expect(calls, 'then the last round, and no repeat of the request').to.deep.equal(['timed', 'all']);
    expect(stopped).to.equal(false);
    pending[1].d.resolve(7);
    await stopping;
    clock.tick(10_000);
    expect(calls, 'no timed round after the stop').to.deep.equal(['timed', 'all']);
    expect(logged).to.deep.equal([]);
  });

  it('runs one round at a time: a request meanwhile runs after it, a timed one meanwhile is skipped', async () => {
    const { s, calls, pending, done } = scheduleOf();
    s.start(1_000);
    s.request();
    clock.tick(1_000); // timed, while the request's round runs
    expect(calls).to.deep.equal(['all']);
    s.request();
    s.request();
    pending[0].d.resolve(2);
    await settle();
    expect(calls, 'one more round for both requests').to.deep.equal(['all', 'all']);
    pending[1].d.resolve(0);
    await settle();
    clock.tick(1_000);
    expect(calls).to.deep.equal(['all', 'all', 'timed']);
    pending[2].d.resolve({ written: null, lastOk: 5 }); // another worker's round
    await settle();
    expect(done).to.deep.equal([2, 0, null]);
    const stopping = s.stop();
    await settle();
    pending[3].d.resolve(0);
    await stopping;
    expect(calls).to.deep.equal(['all', 'all', 'timed', 'all']);
  });

  it('logs a failure once, retries at the next interval (not at once on a request), and logs the recovery', async () => {
    const { s, calls, pending, logged, failures } = scheduleOf();
    s.start(1_000);
    clock.tick(1_000);
    s.request();
    pending[0].d.reject(new Error('Cassandra is down'));
    await settle();
    expect(calls, 'no retry at once while failing').to.deep.equal(['timed']);
    clock.tick(1_000);
    pending[1].d.reject(new Error('Cassandra is down'));
    await settle();
    expect(logged).to.deep.equal(['checkpoint failed (retrying every interval): Cassandra is down']);
    expect(failures()).to.equal(2);
    expect(s.isFailing).to.equal(true);
    clock.tick(1_000);
    pending[2].d.resolve({ written: 4, lastOk: 9 });
    await settle();
    expect(logged[1]).to.equal('checkpoints to Cassandra resumed');
    expect(s.isFailing).to.equal(false);
    expect(calls, 'the request made while failing runs once they succeed again').to.deep.equal(['timed', 'timed', 'timed', 'all']);
    const stopping = s.stop();
    await settle();
    pending[3].d.resolve(1);
    await settle();
    pending[4].d.reject(new Error('Connection is closed'));
    await stopping;
    expect(logged[2]).to.equal('last checkpoint failed: Connection is closed');
  });
});
