import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { readPid, runningPid, setGroupNice, sleep, stackPaths, startDetached, stopRecorded } from '../../scripts/stack/procs';

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

  it("sets the CPU priority of a started server's own scheduling group, not of this one's", async function () {
    if (fs.readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim() !== '1') {
      expect(setGroupNice(process.pid, 5)).to.match(/autogroup scheduling is off/);
      return this.skip();
    }
    const p = stackPaths(dir);
    const pid = startDetached(p, 'sleeper', 'sleep', ['30']);
    const group = (of: number) => fs.readFileSync(`/proc/${of}/autogroup`, 'utf8').trim();
    const mine = group(process.pid);
    expect(group(pid).split(' ')[0], 'a session (group) of its own').to.not.equal(mine.split(' ')[0]);
    expect(setGroupNice(pid, 7)).to.equal('group nice 7');
    expect(group(pid)).to.match(/ nice 7$/);
    expect(group(process.pid)).to.equal(mine);
    process.env.HH_STACK_GROUP_NICE = 'off';
    try {
      expect(setGroupNice(pid, 3)).to.match(/off/);
      expect(group(pid)).to.match(/ nice 7$/);
    } finally {
      delete process.env.HH_STACK_GROUP_NICE;
    }
    await stopRecorded(p, 'sleeper', 2000);
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
