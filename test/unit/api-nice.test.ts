import { expect } from 'chai';
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import { setNice } from '../../src/runtime/cluster';

describe('cluster: the API processes’ nice value', () => {
  it('sets a process’s nice value and says so', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      expect(setNice(child.pid!, 7)).to.equal('nice 7');
      expect(os.getPriority(child.pid!)).to.equal(7);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('says why when it cannot (no such process), and does not throw', () => {
    expect(setNice(2 ** 22 + 12345, -5)).to.match(/^nice -5 not set \(ESRCH\)/);
  });
});
