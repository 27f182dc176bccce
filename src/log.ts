/**
 * The runtime's one structured logger (pino): JSON lines on stdout, human-readable lines
 * when stdout is a terminal (pino-pretty, in-process). HH_LOG_LEVEL sets the level (info).
 * kafkajs and the Temporal SDK log through it at the right levels: a normal consumer-group
 * rebalance is INFO, not ERROR.
 */
import pino, { type Logger } from 'pino';
import { ConfigError } from './config';
import pretty from 'pino-pretty';
import { logLevel as kafkaLevel, type logCreator } from 'kafkajs';
import type { LogLevel as TemporalLevel, LogMetadata, Logger as TemporalLogger } from '@temporalio/worker';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** HH_LOG_LEVEL, checked like every other setting: a wrong value stops the process naming it. */
export function logLevelOf(env: NodeJS.ProcessEnv): string {
  const v = (env.HH_LOG_LEVEL ?? 'info').toLowerCase();
  if (!LEVELS.includes(v)) throw new ConfigError('HH_LOG_LEVEL', `must be one of ${LEVELS.join(', ')}, got "${env.HH_LOG_LEVEL}"`);
  return v;
}

export const logger: Logger = pino(
  {
    level: logLevelOf(process.env),
    base: { pid: process.pid, ...(process.env.HH_WORKER_SLOT ? { slot: Number(process.env.HH_WORKER_SLOT) } : {}) },
    // Credentials are never logged, even if an object carrying them is.
    redact: { paths: ['password', '*.password', 'authorization', '*.authorization', 'headers.authorization', 'sasl'], censor: '[secret]' },
  },
  // HH_LOG_TO_STDERR: a command whose stdout is its answer (the hh CLI) logs to stderr.
  process.env.HH_LOG_TO_STDERR
    ? pino.destination({ fd: 2, sync: true })
    : process.stdout.isTTY
      ? pretty({ colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' })
      : // Synchronous: log lines are few, and none may be lost when a process exits right after one.
        pino.destination({ fd: 1, sync: true }),
);

/** A `(line, fields?) => void` logger of one component (the signature the runtime's parts take). */
export function lineLogger(component: string, parent: Logger = logger): (s: string, fields?: Record<string, unknown>) => void {
  const child = parent.child({ component });
  return (s, fields) => child.info(fields ?? {}, s);
}

/**
 * kafkajs entries that are normal operation although kafkajs logs them at ERROR or WARN:
 * a group rebalancing (members joining or leaving), a member re-joining.
 */
export function kafkaEntryLevel(level: kafkaLevel, message: string, error?: string): 'debug' | 'info' | 'warn' | 'error' {
  const text = `${message} ${error ?? ''}`;
  if (/REBALANCE_IN_PROGRESS|rebalancing|re-joining|not aware of this member|UNKNOWN_MEMBER_ID|ILLEGAL_GENERATION/i.test(text)) return 'info';
  if (level === kafkaLevel.ERROR) return 'error';
  if (level === kafkaLevel.WARN) return 'warn';
  if (level === kafkaLevel.INFO) return 'info';
  return 'debug';
}

/** kafkajs's logCreator writing into the runtime's logger. */
export const kafkaLogCreator: logCreator = () => {
  const child = logger.child({ component: 'kafkajs' });
  return ({ namespace, level, log }) => {
    const { message, ...extra } = log as { message: string; timestamp?: string; logger?: string; error?: string };
    delete extra.timestamp; // pino stamps its own
    delete extra.logger;
    child[kafkaEntryLevel(level, message, extra.error)]({ namespace, ...extra }, message);
  };
};

/** Temporal SDK messages that are expected in this runtime's set-up (an activity-only Worker polls no workflows). */
const TEMPORAL_EXPECTED = /No workflows registered, not polling for workflow tasks/;

/** The Temporal SDK's Logger writing into the runtime's logger (Runtime.install({ logger })). */
export class TemporalPinoLogger implements TemporalLogger {
  private readonly child = logger.child({ component: 'temporal' });

  constructor(private readonly min: TemporalLevel = 'INFO') {}

  log(level: TemporalLevel, message: string, meta?: LogMetadata): void {
    const order: TemporalLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];
    let l = level;
    if (l === 'WARN' && TEMPORAL_EXPECTED.test(message)) l = 'INFO';
    if (order.indexOf(l) < order.indexOf(this.min)) return;
    const to = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;
    this.child[to[l]](meta ?? {}, message);
  }
  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}
