/**
 * `workflow-bundle-child <out>`: bundles the product's workflows into `out` and exits (the
 * primary runs it as a child process, workflow-bundle.ts; what bundling loads and grows ends
 * with it).
 */
import * as fs from 'node:fs';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { WORKFLOWS_PATH } from '../worker';

async function main(out: string): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: new DefaultLogger('WARN') });
  // Written whole, then renamed: a reader never sees half a bundle.
  const tmp = `${out}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, code);
  fs.renameSync(tmp, out);
}

const out = process.argv[2];
if (!out) {
  process.stderr.write('usage: workflow-bundle-child <out file>\n');
  process.exit(2);
}
main(out).then(
  () => process.exit(0),
  (e: Error) => {
    process.stderr.write(`${e.stack ?? e.message}\n`);
    process.exit(1);
  },
);
