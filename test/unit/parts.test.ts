import { expect } from 'chai';
import { loadConfig } from '../../src/config';
import { processParts, workerParts } from '../../src/runtime/parts';

describe('cluster: the parts each process runs', () => {
  it('by default the ingest workers run only the ingest: the API and the lifecycle have processes of their own', () => {
    const rt = loadConfig({}).runtime;
    expect(rt.apiProcesses).to.equal(1);
    expect(rt.lifecycleProcesses).to.equal(1);
    expect(workerParts(rt)).to.deep.equal(['ingest']);
  });

  it('the workers take on what has no process of its own', () => {
    expect(workerParts({ apiProcesses: 0, lifecycleProcesses: 1 })).to.deep.equal(['ingest', 'api']);
    expect(workerParts({ apiProcesses: 1, lifecycleProcesses: 0 })).to.deep.equal(['ingest', 'lifecycle']);
    expect(workerParts({ apiProcesses: 0, lifecycleProcesses: 0 })).to.deep.equal(['ingest', 'api', 'lifecycle']);
  });

  it('reads HH_PROCESS_ROLE as a list of parts ("both" or unset: all), and names a wrong one', () => {
    expect([...processParts('ingest,lifecycle')]).to.deep.equal(['ingest', 'lifecycle']);
    expect([...processParts('api')]).to.deep.equal(['api']);
    expect([...processParts(undefined)]).to.deep.equal(['ingest', 'api', 'lifecycle']);
    expect([...processParts('both')]).to.deep.equal(['ingest', 'api', 'lifecycle']);
    expect(() => processParts('ingest,merge')).to.throw(/HH_PROCESS_ROLE lists ingest, api, lifecycle \(or is both\), not "merge"/);
  });

  it('HH_LIFECYCLE_PROCESSES is checked like the other counts', () => {
    expect(loadConfig({ HH_LIFECYCLE_PROCESSES: '0' }).runtime.lifecycleProcesses).to.equal(0);
    expect(() => loadConfig({ HH_LIFECYCLE_PROCESSES: '9' })).to.throw(/HH_LIFECYCLE_PROCESSES/);
  });
});
