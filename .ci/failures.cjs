#!/usr/bin/env node
/**
 * Reads a mocha (spec reporter) log and prints every failure in a few lines: its number,
 * its suite and title (a hook's too), and the first lines of its error. CI shows only the
 * tail of a run's output, where the long report of the last failure would hide the first
 * ones; this list goes just before the last line.
 *
 * usage: node .ci/failures.cjs <mocha log>
 */
'use strict';
const fs = require('node:fs');

const MAX_LINE = 400;
const ERROR_LINES = 3;

function failures(text) {
  const lines = text.split('\n');
  // The report starts after the last "N failing" line.
  let start = -1;
  for (let i = 0; i < lines.length; i++) if (/^\s*\d+ failing/.test(lines[i])) start = i + 1;
  if (start < 0) return [];
  const out = [];
  let cur = null;
  let inTitle = false;
  for (let i = start; i < lines.length; i++) {
    const line = lines[i];
    const head = /^ {2}(\d+)\) (.*)$/.exec(line);
    if (head) {
      cur = { n: Number(head[1]), title: [head[2].trim()], error: [] };
      out.push(cur);
      inTitle = !head[2].trimEnd().endsWith(':');
      continue;
    }
    if (!cur) continue;
    if (inTitle) {
      if (line.trim() === '') continue;
      cur.title.push(line.trim());
      if (line.trimEnd().endsWith(':')) inTitle = false;
      continue;
    }
    if (line.trim() === '' || cur.error.length >= ERROR_LINES) continue;
    cur.error.push(line.trim());
  }
  return out;
}

function main() {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node .ci/failures.cjs <mocha log>\n');
    process.exit(2);
  }
  const list = failures(fs.readFileSync(file, 'utf8'));
  if (list.length === 0) return;
  const cut = (s) => (s.length > MAX_LINE ? `${s.slice(0, MAX_LINE)}…` : s);
  process.stdout.write(`failures (${list.length}), in the order they happened:\n`);
  for (const f of list) {
    process.stdout.write(`  ${f.n}) ${cut(f.title.join(' '))}\n`);
    for (const e of f.error) process.stdout.write(`       ${cut(e)}\n`);
  }
}

if (require.main === module) main();
module.exports = { failures };
