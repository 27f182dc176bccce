import { expect } from 'chai';
import { loadConfig } from '../../src/config';
import { workerExecArgv } from '../../src/runtime/cluster';

describe('cluster: the Node flags of the forked members', () => {
  it('gives each member the young generation of HH_WORKER_SEMI_SPACE_MB (32 MB by default) and the old-space cap', () => {
    const rt = loadConfig({}).runtime;
    expect(rt.workerSemiSpaceMb).to.equal(32);
    expect(rt.lifecycleSemiSpaceMb, 'the lifecycle processes: the same by default').to.equal(32);
    expect(workerExecArgv({ heapMb: rt.workerHeapMb, semiSpaceMb: rt.workerSemiSpaceMb }, ['--import', 'tsx'])).to.deep.equal([
      '--import',
      'tsx',
      '--max-old-space-size=384',
      '--max-semi-space-size=32',
    ]);
  });

  it("leaves V8's defaults with 0, and adds the profiler's flags when asked", () => {
    const rt = loadConfig({ HH_WORKER_SEMI_SPACE_MB: '0', HH_WORKER_HEAP_MB: '0' }).runtime;
    expect(workerExecArgv({ heapMb: rt.workerHeapMb, semiSpaceMb: rt.workerSemiSpaceMb, profileDir: '/tmp/p' }, [])).to.deep.equal([
      '--cpu-prof',
      '--cpu-prof-dir=/tmp/p',
    ]);
  });
});
