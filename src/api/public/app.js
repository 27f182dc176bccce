// The live page: polls the API once a second (Top K, /metrics), the region's windows every
// 5 s; computes rates and quantiles from the counters between polls; keeps a few minutes of
// history for the charts (uPlot). Survives the API going away: it says so and retries.
'use strict';

const POLL_MS = 1000;
const WINDOWS_MS = 5000;
const HISTORY = 300; // points (5 minutes at 1 s)

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const state = { region: params.get('region') || 'global', timeframe: params.get('timeframe') || 'all', k: params.get('k') || '10' };
let previousRanks = new Map();
let lastMetrics = null;
const series = { t: [], eps: [], lag: [], p99: [] };
let charts = null;

function setBanner(text) {
  const b = $('banner');
  b.hidden = !text;
  b.textContent = text || '';
}

async function getJson(url) {
  const res = await fetch(url, { cache: 'no-store' });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(body.error || `HTTP ${res.status}`), { status: res.status });
  return body;
}

function option(select, value, label) {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = label || value;
  select.append(o);
}

function syncUrl() {
  window.history.replaceState(null, '', `?${new URLSearchParams(state)}`);
}

async function setUp() {
  const cfg = await getJson('/ui/config');
  const regions = (await getJson('/regions')).regions;
  const regionSelect = $('region');
  option(regionSelect, 'global', 'global (all regions)');
  for (const r of regions) option(regionSelect, r);
  if (![...regionSelect.options].some((o) => o.value === state.region)) option(regionSelect, state.region);
  regionSelect.value = state.region;
  const tf = $('timeframe');
  for (const t of cfg.timeframes) option(tf, t, t === 'all' ? 'all time' : `last ${t}`);
  tf.value = state.timeframe;
  $('k').value = state.k;
  for (const id of ['region', 'timeframe', 'k']) {
    $(id).addEventListener('change', (e) => {
      state[id] = e.target.value;
      previousRanks = new Map();
      syncUrl();
      void pollTop();
      if (id === 'region') void pollWindows();
    });
  }
}

function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text === null || text === undefined ? '–' : String(text);
  if (cls) td.className = cls;
  tr.append(td);
}

function renderTop(answer) {
  const tbody = $('top').querySelector('tbody');
  const ranks = new Map();
  const rows = answer.top_posts.map((p, i) => {
    const rank = i + 1;
    ranks.set(p.post_id, rank);
    const tr = document.createElement('tr');
    tr.dataset.post = p.post_id;
    const before = previousRanks.get(p.post_id);
    if (previousRanks.size) {
      if (before === undefined) tr.classList.add('new', 'changed');
      else if (before > rank) tr.classList.add('up', 'changed');
      else if (before < rank) tr.classList.add('down', 'changed');
    }
    cell(tr, rank);
    cell(tr, p.post_id);
    cell(tr, p.view_count.toLocaleString(), 'num');
    cell(tr, p.author);
    cell(tr, p.content, 'content');
    return tr;
  });
  tbody.replaceChildren(...rows);
  previousRanks = ranks;
  const asOf = answer.as_of ? new Date(answer.as_of) : new Date();
  const what = answer.status && answer.status !== 'live' ? ` — ${answer.status}` : '';
  $('asof').textContent = `${answer.region} · ${answer.timeframe || answer.window} · as of ${asOf.toLocaleTimeString()} from ${answer.source}${what}`;
  renderMerge(answer);
}

function renderMerge(answer) {
  if (!answer.merge) return;
  const m = answer.merge;
  $('h-merge').textContent =
    `${m.plan} over ${m.regions} regions, ${m.entries_moved.toLocaleString()} entries moved (naive ${m.entries_naive.toLocaleString()})`;
}

async function pollTop() {
  const q = new URLSearchParams({ region: state.region, timeframe: state.timeframe, k: state.k });
  try {
    renderTop(await getJson(`/top-posts?${q}`));
    setBanner('');
  } catch (e) {
    if (e.status === 404) {
      $('top').querySelector('tbody').replaceChildren();
      $('asof').textContent = `no counts for ${state.region} yet`;
      setBanner('');
    } else setBanner(`The API does not answer (${e.message}); retrying every second…`);
  }
  if (state.region !== 'global') {
    // The merge figures come with the global answer.
    getJson('/top-posts?region=global&k=1')
      .then(renderMerge)
      .catch(() => undefined);
  }
}

/** Prometheus text → Map(name → [{labels, value}]). */
function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})? (\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[3] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value: Number(m[4]) });
  }
  return out;
}

const sum = (m, name) => (m.get(name) || []).reduce((a, s) => a + s.value, 0);

function quantile(q, now, before) {
  const buckets = (m) => {
    const b = new Map();
    for (const s of m.get('hh_event_apply_delay_seconds_bucket') || []) b.set(s.labels.le, (b.get(s.labels.le) || 0) + s.value);
    return b;
  };
  const a = buckets(now);
  const z = before ? buckets(before) : new Map();
  const les = [...a.keys()].sort((x, y) => (x === '+Inf' ? 1 : y === '+Inf' ? -1 : Number(x) - Number(y)));
  const total = (a.get('+Inf') || 0) - (z.get('+Inf') || 0);
  if (total <= 0) return null;
  for (const le of les) if ((a.get(le) || 0) - (z.get(le) || 0) >= q * total) return le === '+Inf' ? Infinity : Number(le);
  return null;
}

const fmtS = (s) => (s === null ? '–' : s === Infinity ? '> 300 s' : s < 1 ? `≤ ${Math.round(s * 1000)} ms` : `≤ ${s} s`);

async function pollMetrics() {
  let text;
  try {
    const res = await fetch('/metrics', { cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    text = await res.text();
  } catch {
    return;
  }
  const now = { at: Date.now(), m: parseMetrics(text) };
  const prev = lastMetrics;
  lastMetrics = now;
  const lagSeries = now.m.get('hh_consumer_lag_records') || [];
  const lag = lagSeries.reduce((a, s) => a + s.value, 0);
  $('h-lag').textContent =
    `${lag.toLocaleString()} records${lagSeries.length ? ` (${lagSeries.map((s) => `p${s.labels.partition}: ${s.value}`).join(', ')})` : ''}`;
  const ckpt = (now.m.get('hh_checkpoint_last_success_timestamp_seconds') || [])[0];
  $('h-ckpt').textContent = ckpt ? `${Math.max(0, Math.round(Date.now() / 1000 - ckpt.value))} s ago` : '–';
  if (!prev) return;
  const dt = (now.at - prev.at) / 1000;
  const rate = (name) => Math.max(0, (sum(now.m, name) - sum(prev.m, name)) / dt);
  const eps = rate('hh_events_applied_total');
  $('h-eps').textContent = `${Math.round(eps).toLocaleString()} events/s`;
  $('h-dlq').textContent = `${rate('hh_events_dead_lettered_total').toFixed(1)}/s · ${rate('hh_events_late_total').toFixed(1)}/s`;
  const p50 = quantile(0.5, now.m, prev.m);
  const p99 = quantile(0.99, now.m, prev.m);
  $('h-fresh').textContent = `${fmtS(p50)} / ${fmtS(p99)}`;
  series.t.push(now.at / 1000);
  series.eps.push(eps);
  series.lag.push(lag);
  series.p99.push(p99 === null || p99 === Infinity ? null : p99);
  for (const k of Object.keys(series)) if (series[k].length > HISTORY) series[k].shift();
  drawCharts();
}

function drawCharts() {
  if (typeof uPlot === 'undefined') return;
  const width = Math.max(220, $('chart-eps').clientWidth || 300);
  const make = (el, label, color, data) =>
    new uPlot({ width, height: 110, legend: { show: true }, series: [{}, { label, stroke: color, width: 2 }], axes: [{}, { size: 50 }] }, data, el);
  if (!charts) {
    charts = {
      eps: make($('chart-eps'), 'events/s', '#1a5fd0', [series.t, series.eps]),
      lag: make($('chart-lag'), 'lag (records)', '#8a5a00', [series.t, series.lag]),
      fresh: make($('chart-fresh'), 'freshness p99 (s)', '#b3261e', [series.t, series.p99]),
    };
  } else {
    charts.eps.setData([series.t, series.eps]);
    charts.lag.setData([series.t, series.lag]);
    charts.fresh.setData([series.t, series.p99]);
  }
}

async function pollWindows() {
  const tbody = $('windows').querySelector('tbody');
  if (state.region === 'global') {
    tbody.replaceChildren();
    $('windows-ui').textContent = 'windows are per region: choose one';
    return;
  }
  try {
    const w = await getJson(`/windows?${new URLSearchParams({ region: state.region, limit: '12' })}`);
    $('windows-ui').href = w.ui;
    $('windows-ui').textContent = 'all in the Temporal UI';
    tbody.replaceChildren(
      ...w.windows.map((x) => {
        const tr = document.createElement('tr');
        const td = document.createElement('td');
        const a = document.createElement('a');
        a.href = x.link;
        a.target = '_blank';
        a.rel = 'noopener';
        a.textContent = `${x.spec} ${x.id.split(':').pop()}`;
        td.append(a);
        tr.append(td);
        cell(tr, x.start ? new Date(x.start).toLocaleTimeString() : '–');
        cell(tr, x.state, `state-${x.state}`);
        return tr;
      }),
    );
  } catch {
    // the banner of the Top K poll says when the API is gone
  }
}

async function main() {
  for (;;) {
    try {
      await setUp();
      break;
    } catch (e) {
      setBanner(`The API does not answer (${e.message}); retrying…`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }
  const loop = (fn, ms) => {
    const run = async () => {
      await fn();
      setTimeout(run, ms);
    };
    void run();
  };
  loop(pollTop, POLL_MS);
  loop(pollMetrics, POLL_MS);
  loop(pollWindows, WINDOWS_MS);
}

void main();
