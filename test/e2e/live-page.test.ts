/// <reference lib="dom" />
/**
 * The live page at `/`, in a real browser (Debian's Chromium, headless, driven by
 * puppeteer-core) against a running runtime: the same top 10 as GET /top-posts, new counts
 * shown with their rank change, the pipeline panel and charts, the windows with Temporal UI
 * links, keyboard use, a phone-width layout, and the API restarting under it. Screenshots
 * are kept in test/artifacts/.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { PROJECT_ROOT } from '../../src/config';
import { Isolated } from '../../scripts/harness/isolated';
import { startRuntime, waitDrained, type Runtime } from '../../scripts/harness/runtime';
import { unique } from '../helpers';
import { dumpOnFailure } from '../support/failure';

const ARTIFACTS = path.join(PROJECT_ROOT, 'test', 'artifacts');

describe('the live page in a real browser (headless Chromium)', function () {
  this.timeout(240_000);
  const id = unique('page');
  const region = `${id}_R`;
  const iso = new Isolated(id, { HH_WORKERS: '1' }, 2);
  let rt: Runtime;
  let browser: Browser;
  let page: Page;
  let seq = 0;

  const send = async (counts: Record<string, number>) => {
    const now = Date.now();
    const messages = Object.entries(counts).flatMap(([post, n]) =>
      Array.from({ length: n }, () => ({
        key: region,
        value: JSON.stringify({ event_id: `${id}-${seq++}`, post_id: post, region_id: region, timestamp: now }),
      })),
    );
    await iso.producer.send({ topic: iso.env.HH_KAFKA_TOPIC, acks: -1, messages });
  };
  const apiTop = async (): Promise<[string, number][]> => {
    const res = await fetch(`${rt.api}/top-posts?region=${region}&timeframe=all&k=10`);
    const body = (await res.json()) as { top_posts: { post_id: string; view_count: number }[] };
    return body.top_posts.map((p) => [p.post_id, p.view_count]);
  };
  const pageTop = (): Promise<[string, number][]> =>
    page.$$eval('#top tbody tr', (rows) =>
      rows.map((r) => {
        const c = Array.from(r.querySelectorAll('td'), (td) => td.textContent ?? '');
        return [c[1], Number(c[2].replace(/[^0-9]/g, ''))] as [string, number];
      }),
    );

  afterEach(function () {
    dumpOnFailure(this, rt);
  });
  before(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await iso.setUp();
    rt = await startRuntime(iso.env);
    // Twelve posts with distinct counts: a top 10 with no ties.
    await send(Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`post-${i}`, 30 - 2 * i])));
    await waitDrained(iso.admin, iso.env.HH_KAFKA_GROUP, iso.env.HH_KAFKA_TOPIC);
    const executablePath = execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
    browser = await puppeteer.launch({ executablePath, headless: true, args: ['--headless=new', '--no-sandbox', '--disable-gpu'] });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
  });
  after(async () => {
    await browser?.close();
    await iso.tearDown(rt, [region]);
  });

  it('shows the same top 10 as GET /top-posts, with the pipeline panel, charts and the windows', async () => {
    await page.goto(`${rt.api}/?region=${encodeURIComponent(region)}&timeframe=all&k=10`, { waitUntil: 'domcontentloaded' });
    await page.evaluate(() => ((window as unknown as { loadedOnce: boolean }).loadedOnce = true));
    await page.waitForFunction(() => document.querySelectorAll('#top tbody tr').length === 10, { timeout: 15_000 });
    expect(await pageTop()).to.deep.equal(await apiTop());
    expect(await page.$eval('#asof', (e) => e.textContent)).to.match(/as of .* from redis/);
    // Rates need two polls; the charts are uPlot canvases.
    await page.waitForFunction(() => /events\/s/.test(document.getElementById('h-eps')?.textContent ?? ''), { timeout: 10_000 });
    expect(await page.$eval('#h-lag', (e) => e.textContent)).to.match(/records/);
    expect(await page.$$eval('.chart canvas', (c) => c.length)).to.be.at.least(3);
    await page.waitForFunction(() => document.querySelectorAll('#windows tbody tr a').length > 0, { timeout: 15_000 });
    const link = await page.$eval('#windows tbody tr a', (a) => (a as HTMLAnchorElement).href);
    expect(link).to.match(new RegExp(`/namespaces/[^/]+/workflows/window%3A${region}%3A`));
    await page.screenshot({ path: path.join(ARTIFACTS, 'live-page.png'), fullPage: true });
  });

  it('updates within 2 s of the API after new events, and highlights the rank change', async () => {
    await send({ 'post-new': 100 });
    // Once the API answers with the new leader, the page (polling every second) follows.
    for (let i = 0; i < 200 && (await apiTop())[0][0] !== 'post-new'; i++) await new Promise((r) => setTimeout(r, 100));
    expect((await apiTop())[0]).to.deep.equal(['post-new', 100]);
    await page.waitForFunction(() => document.querySelector('#top tbody tr')?.getAttribute('data-post') === 'post-new', { timeout: 2000 });
    expect(await page.$eval('#top tbody tr', (tr) => tr.className)).to.match(/\bnew\b/);
    expect(await page.$eval('#top tbody tr:nth-child(2)', (tr) => tr.className)).to.match(/\bdown\b/);
    expect(await pageTop()).to.deep.equal(await apiTop());
  });

  it('survives the API restarting: says it is gone, then shows the counts again without a reload', async () => {
    await rt.stop();
    await page.waitForFunction(() => !document.getElementById('banner')?.hidden, { timeout: 10_000 });
    expect(await page.$eval('#banner', (e) => e.textContent)).to.match(/does not answer/);
    rt = await startRuntime(iso.env);
    await page.waitForFunction(() => document.getElementById('banner')?.hidden === true, { timeout: 30_000 });
    expect(await page.evaluate(() => (window as unknown as { loadedOnce?: boolean }).loadedOnce)).to.equal(true); // the same page
    await page.waitForFunction(() => document.querySelectorAll('#top tbody tr').length === 10, { timeout: 15_000 });
    expect(await pageTop()).to.deep.equal(await apiTop());
  });

  it('is keyboard-usable (Tab to the region, arrows to change it) and fits a phone-width screen', async () => {
    await page.focus('body');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).to.equal('region');
    await page.keyboard.press('ArrowUp'); // the option before this region: global
    await page.waitForFunction(() => /^global · /.test(document.getElementById('asof')?.textContent ?? ''), { timeout: 10_000 });
    await page.setViewport({ width: 390, height: 844, isMobile: true });
    await page.goto(`${rt.api}/?region=${encodeURIComponent(region)}`, { waitUntil: 'domcontentloaded' });
    await page.waitForFunction(() => document.querySelectorAll('#top tbody tr').length === 10, { timeout: 15_000 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow, 'horizontal overflow at 390 px').to.be.at.most(0);
    await page.screenshot({ path: path.join(ARTIFACTS, 'live-page-phone.png'), fullPage: true });
  });
});
