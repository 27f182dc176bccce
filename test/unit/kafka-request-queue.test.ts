import { expect } from 'chai';
import sinon from 'sinon';
import { fixKafkajsRequestQueue, kafkajsRequestQueue } from '../../src/kafka-request-queue';

/** kafkajs's own RequestQueue (the class its connections use), as a constructor. */
type Queue = {
  checkPendingRequests(): void;
  push(r: { entry: Record<string, unknown>; expectResponse: boolean; sendRequest: () => void }): void;
  fulfillRequest(r: { correlationId: number; payload: Buffer | null; size: number }): void;
  maybeThrottle(ms: number): void;
};
const RequestQueue = kafkajsRequestQueue() as unknown as new (o: Record<string, unknown>) => Queue;
const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const queue = (maxInFlightRequests: number | null = null) =>
  new RequestQueue({ maxInFlightRequests, requestTimeout: 30_000, enforceRequestTimeout: false, clientId: 't', broker: 'b:9092', logger: quiet });
const entry = (correlationId: number) => ({ correlationId, apiKey: 3, apiName: 'Metadata', apiVersion: 6, resolve: () => undefined, reject: () => undefined });

describe("kafkajs's request queue (src/kafka-request-queue.ts: fixed, as clients.ts loads it)", () => {
  let clock: sinon.SinonFakeTimers;
  before(() => fixKafkajsRequestQueue());
  beforeEach(() => (clock = sinon.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] })));
  afterEach(() => clock.restore());

  it('an idle connection arms no timer: no check runs while nothing waits (kafkajs 2.2.4 ran one every millisecond)', () => {
    const q = queue();
    const checks = sinon.spy(q, 'checkPendingRequests');
    // What a response does: fulfil it, then check for waiting requests.
    q.push({ entry: entry(1), expectResponse: true, sendRequest: () => undefined });
    q.fulfillRequest({ correlationId: 1, payload: null, size: 0 });
    checks.resetHistory();
    clock.tick(1000);
    expect(checks.callCount, 'checks in an idle second').to.equal(0);
    expect(clock.countTimers(), 'timers armed').to.equal(0);
  });

  it("is the queue of kafkajs's own connections (the module kafkajs loads is the one fixed)", () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const Connection = require('kafkajs/src/network/connection') as new (o: Record<string, unknown>) => { requestQueue: Queue };
    const logger = { ...quiet, namespace: () => logger };
    const { requestQueue } = new Connection({ host: '127.0.0.1', port: 9, logger, socketFactory: () => undefined, requestTimeout: 30_000 });
    requestQueue.checkPendingRequests(); // as after a response
    clock.tick(1000);
    expect(clock.countTimers(), 'timers armed by an idle connection').to.equal(0);
  });

  it('a request that waits out a throttle is sent when the throttle ends, and then the queue is idle again', () => {
    const q = queue();
    q.maybeThrottle(50);
    const sent = sinon.spy();
    q.push({ entry: entry(1), expectResponse: true, sendRequest: sent });
    clock.tick(49);
    expect(sent.called, 'not while throttled').to.equal(false);
    clock.tick(2);
    expect(sent.calledOnce, 'sent once the throttle ended').to.equal(true);
    q.fulfillRequest({ correlationId: 1, payload: null, size: 0 });
    expect(clock.countTimers()).to.equal(0);
  });

  it('a request that waits for an in-flight slot is sent when a response frees one', () => {
    const q = queue(1);
    const first = sinon.spy();
    const second = sinon.spy();
    q.push({ entry: entry(1), expectResponse: true, sendRequest: first });
    q.push({ entry: entry(2), expectResponse: true, sendRequest: second });
    clock.tick(100);
    expect([first.calledOnce, second.called]).to.deep.equal([true, false]);
    q.fulfillRequest({ correlationId: 1, payload: null, size: 0 });
    expect(second.calledOnce, 'sent when the slot was freed').to.equal(true);
    q.fulfillRequest({ correlationId: 2, payload: null, size: 0 });
    clock.tick(100);
    expect(clock.countTimers()).to.equal(0);
  });
});
