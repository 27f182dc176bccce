import { expect } from 'chai';
import { logLevel } from 'kafkajs';
import { kafkaEntryLevel, logLevelOf } from '../../src/log';

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

  it('HH_LOG_LEVEL: one of the levels (any case), info by default; anything else is refused naming the variable', () => {
    expect(logLevelOf({})).to.equal('info');
    expect(logLevelOf({ HH_LOG_LEVEL: 'WARN' })).to.equal('warn');
    expect(() => logLevelOf({ HH_LOG_LEVEL: 'loud' })).to.throw(/HH_LOG_LEVEL.*must be one of trace, debug, info/);
  });
});
