import { expect } from 'chai';
import { logLevel } from 'kafkajs';
import { kafkaEntryLevel } from '../../src/log';

describe('log levels of the libraries routed into the runtime logger', () => {
  it('a normal consumer-group rebalance is INFO, whatever level kafkajs gives it; real errors stay errors', () => {
    expect(kafkaEntryLevel(logLevel.ERROR, '[Connection] Response Heartbeat(key: 12, version: 3)', 'The group is rebalancing, so a rejoin is needed')).to.equal(
      'info',
    );
    expect(kafkaEntryLevel(logLevel.ERROR, '[Runner] The group is rebalancing, re-joining')).to.equal('info');
    expect(kafkaEntryLevel(logLevel.ERROR, '[Connection] Response JoinGroup', 'REBALANCE_IN_PROGRESS')).to.equal('info');
    expect(kafkaEntryLevel(logLevel.ERROR, '[Consumer] Crash: KafkaJSNumberOfRetriesExceeded', 'Connection error: connect ECONNREFUSED')).to.equal('error');
    expect(kafkaEntryLevel(logLevel.WARN, 'KafkaJS v2.0.0 switched default partitioner')).to.equal('warn');
    expect(kafkaEntryLevel(logLevel.INFO, '[Consumer] Starting')).to.equal('info');
    expect(kafkaEntryLevel(logLevel.DEBUG, 'anything')).to.equal('debug');
  });
});
