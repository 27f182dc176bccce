// Installs node_modules from the lock file when they are missing or stale (plain JS: runs before any install).
const { createHash } = require('node:crypto');
const { execSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const lock = path.join(root, 'package-lock.json');
const stamp = path.join(root, 'node_modules', '.heavy-hitters-lock.sha256');
const want = createHash('sha256').update(fs.readFileSync(lock)).digest('hex');
let have = '';
try {
  have = fs.readFileSync(stamp, 'utf8').trim();
} catch {
  /* first install */
}
if (have !== want) {
  const t0 = Date.now();
  console.log('[deps] installing node_modules from package-lock.json (npm ci)');
  execSync('npm ci --no-audit --no-fund', { cwd: root, stdio: 'inherit' });
  fs.writeFileSync(stamp, want);
  console.log(`[deps] installed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
