/**
 * `npm run lint` checks the layout's one-way dependencies (docs/ARCHITECTURE.md) and fails
 * on any import cycle. Type-only imports are not dependencies here: they vanish when
 * compiled (workflows import activities' types, as the Temporal samples do).
 */
const layer = (name) => `^src/${name}/`;
module.exports = {
  forbidden: [
    { name: 'no-cycles', severity: 'error', comment: 'An import cycle ties layers together.', from: {}, to: { circular: true } },
    {
      name: 'workflows-are-pure',
      severity: 'error',
      comment: 'Workflow code runs in the deterministic sandbox: activities only as types, no I/O modules.',
      from: { path: layer('workflows') },
      to: { path: '^src/(?!workflows/|keys\\.ts|ranking/)' },
    },
    {
      name: 'nothing-imports-a-workflow',
      severity: 'error',
      comment: 'Workflows are started by name; only the shared definitions (signals, queries, ids) are imported outside the bundle.',
      from: { path: '^src/(?!workflows/)' },
      to: { path: '^src/workflows/(?!definitions\\.ts)' },
    },
    {
      name: 'stores-are-below',
      severity: 'error',
      comment: 'Stores know Redis, Cassandra and the key formats, nothing above them.',
      from: { path: layer('store') },
      to: { path: '^src/(api|runtime|activities|ingest|actors|workflows)/' },
    },
    {
      name: 'api-reads-stores',
      severity: 'error',
      comment: 'The API answers from the stores; it does not reach into the hot path or the activities.',
      from: { path: layer('api') },
      to: { path: '^src/(ingest|actors|activities|runtime)/' },
    },
    {
      name: 'only-the-runtime-composes',
      severity: 'error',
      comment: 'The runtime wires everything; nothing below imports it.',
      from: { path: '^src/(?!runtime/|main\\.ts)' },
      to: { path: layer('runtime') },
    },
    {
      name: 'src-stands-alone',
      severity: 'error',
      comment: 'The product never imports tests, benchmarks, chaos or scripts.',
      from: { path: '^src/' },
      to: { path: '^(test|bench|chaos|scripts)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: false,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '\\.lua$' },
  },
};
