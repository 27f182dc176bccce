/**
 * Prometheus for real: the rules pass `promtool check rules` and their unit tests
 * (`promtool test rules`), and the Prometheus that `stack:up` runs scrapes a running
 * runtime (registered through file_sd by the runtime itself), records its rates and fires
 * HeavyHittersDeadLetters when a producer sends garbage.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { expect } from 'chai';
import { PROJECT_ROOT } from '../../src/config';
import { Isolated } from '../../scripts/harness/isolated';
import { startRuntime, type Runtime } from '../../scripts/harness/runtime';
import { cfg, unique } from '../helpers';
import { dumpOnFailure } from '../support/failure';

const RULES_DIR = path.join(PROJECT_ROOT, 'ops', 'prometheus');
const prometheus = `http://${cfg.host}:${cfg.prometheus.port}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
}

async function query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const res = await fetch(`${prometheus}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
  expect(body.status).to.equal('success');
  return body.data.result;
}

describe('Prometheus: rules checked and unit-tested; a real alert firing on a running runtime', function () {
  this.timeout(300_000);

  it('promtool check rules and promtool test rules pass', () => {
    const check = execFileSync('promtool', ['check', 'rules', 'heavy-hitters.rules.yml'], { cwd: RULES_DIR, encoding: 'utf8' });
    expect(check).to.match(/SUCCESS: \d+ rules found/);
    // Throws (non-zero exit) on any failed case.
    execFileSync('promtool', ['test', 'rules', 'heavy-hitters.rules.test.yml'], { cwd: RULES_DIR, encoding: 'utf8' });
  });

  describe('against the stack’s Prometheus', () => {
    const id = unique('prom');
    const region = `${id}_R`;
    const iso = new Isolated(id, { HH_WORKERS: '1' }, 1);
    let rt: Runtime;
    let taskQueue: string;
    afterEach(function () {
      dumpOnFailure(this, rt);
    });
    before(async () => {
      await iso.setUp();
      rt = await startRuntime(iso.env);
      taskQueue = iso.env.HH_TEMPORAL_TASK_QUEUE;
    });
    after(async () => {
      await iso.tearDown(rt, [region]);
    });

    it('scrapes the runtime it registered, records events/s, and fires HeavyHittersDeadLetters on a stream of garbage', async () => {
      // Good events and garbage (not JSON: dead letters) at about 10/s each until the alert fires.
      const t0 = Date.now();
      let firing: PromAlert | undefined;
      let sent = 0;
      while (Date.now() - t0 < 240_000 && !firing) {
        const now = Date.now();
        await iso.producer.send({
          topic: iso.env.HH_KAFKA_TOPIC,
          messages: [
            ...Array.from({ length: 5 }, (_, i) => ({
              key: region,
              value: JSON.stringify({ event_id: `${id}-${sent}-${i}`, post_id: `p${i}`, region_id: region, timestamp: now }),
            })),
            ...Array.from({ length: 5 }, (_, i) => ({ key: region, value: `garbage ${sent}-${i}` })),
          ],
        });
        sent++;
        await sleep(500);
        if (sent % 10 === 0) {
          const res = (await (await fetch(`${prometheus}/api/v1/alerts`)).json()) as { data: { alerts: PromAlert[] } };
          firing = res.data.alerts.find((a) => a.labels.alertname === 'HeavyHittersDeadLetters' && a.labels.task_queue === taskQueue && a.state === 'firing');
        }
      }
      expect(firing, 'HeavyHittersDeadLetters firing for this runtime').to.not.equal(undefined);
      expect(firing!.annotations.summary).to.match(/dead letters\/s in /);
      // The target this runtime registered is up, and the recording rules see its stream.
      const up = await query(`up{job="heavy-hitters",task_queue="${taskQueue}"}`);
      expect(up.map((r) => r.value[1])).to.deep.equal(['1']);
      const applied = await query(`hh:events_applied:rate1m{task_queue="${taskQueue}"}`);
      expect(Number(applied[0]?.value[1])).to.be.above(1);
      const dead = await query(`hh:events_dead_lettered:rate1m{task_queue="${taskQueue}"}`);
      expect(Number(dead[0]?.value[1])).to.be.above(1);
      // No other alert of this runtime fires (a healthy runtime apart from its producer).
      const res = (await (await fetch(`${prometheus}/api/v1/alerts`)).json()) as { data: { alerts: PromAlert[] } };
      const others = res.data.alerts.filter(
        (a) => a.labels.task_queue === taskQueue && a.state === 'firing' && a.labels.alertname !== 'HeavyHittersDeadLetters',
      );
      expect(others.map((a) => a.labels.alertname)).to.deep.equal([]);
    });
  });
});
