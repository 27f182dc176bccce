import * as fs from 'node:fs';
import { expect } from 'chai';

/** A runtime process loaded the primary's workflow bundle and never bundled the code itself (swc is what bundling loads). */
export function expectUsesBundle(pid: number): void {
  const environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  expect(
    environ.some((e) => e.startsWith('HH_WORKFLOW_BUNDLE=')),
    `process ${pid} is given the bundle`,
  ).to.equal(true);
  const swc = fs
    .readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .filter((l) => /swc/.test(l));
  expect(swc, `process ${pid} loaded the bundler's compiler`).to.deep.equal([]);
}
