import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { readPid, runningPid, sleep, stackPaths, startDetached, stopRecorded } from '../../scripts/stack/procs';

describe('stack process records', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hh-stack-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('starts a detached process, knows it is running, and stops it by its recorded PID', async () => {
    const p = stackPaths(dir);
    const pid = startDetached(p, 'sleeper', 'sleep', ['30']);
    expect(runningPid(p, 'sleeper')).to.equal(pid);
    expect(await stopRecorded(p, 'sleeper', 2000)).to.equal('stopped');
    expect(runningPid(p, 'sleeper')).to.equal(undefined);
    expect(await stopRecorded(p, 'sleeper', 2000)).to.equal('not running');
  });

  it('sees a killed process as not running', async () => {
    const p = stackPaths(dir);
    const pid = startDetached(p, 'sleeper', 'sleep', ['30']);
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 50 && runningPid(p, 'sleeper') !== undefined; i++) await sleep(20);
    expect(runningPid(p, 'sleeper')).to.equal(undefined);
  });

  it('never signals a PID whose process is not the one it started (PID reuse)', async () => {
    const p = stackPaths(dir);
    startDetached(p, 'sleeper', 'sleep', ['30']);
    const rec = readPid(p, 'sleeper')!;
    // Pretend the recorded PID now belongs to another program: same PID, other start time.
    fs.writeFileSync(path.join(p.run, 'sleeper.pid'), JSON.stringify({ ...rec, procStart: '1' }));
    expect(runningPid(p, 'sleeper')).to.equal(undefined);
    expect(await stopRecorded(p, 'sleeper', 500)).to.equal('not running');
    expect(() => process.kill(rec.pid, 0)).not.to.throw(); // still alive: untouched
    process.kill(rec.pid, 'SIGKILL');
  });
});
