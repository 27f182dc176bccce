import type { Runtime } from '../../scripts/harness/runtime';

/** Mocha afterEach body: on a failure, show the runtime's last log lines (CI has nothing else). */
export function dumpOnFailure(ctx: Mocha.Context, rt: Runtime | undefined): void {
  if (ctx.currentTest?.state === 'failed' && rt) {
    process.stdout.write(
      `    --- last runtime output ---\n${rt.output
        .slice(-60)
        .map((l) => `    | ${l}`)
        .join('\n')}\n`,
    );
  }
}
