// Every workflow the Worker registers (workflowsPath points here).
export * from './ingest-supervisor';
export * from './window';
export * from './coordinator';
export * from './global-merge';
