/** The project's clients of its servers, built in one place from the config. */
import { Kafka, logLevel, type RetryOptions } from 'kafkajs';
import type { Config } from './config';

export interface KafkaClientOptions {
  /** kafkajs's retry of a failed request (its own default: 5 retries with back-off). */
  retries?: number;
  /** Milliseconds a request may take. */
  requestTimeout?: number;
}

export function kafkaClient(cfg: Config, clientId: string, opts: KafkaClientOptions = {}): Kafka {
  const retry: RetryOptions | undefined = opts.retries === undefined ? undefined : { retries: opts.retries };
  return new Kafka({
    clientId,
    brokers: [...cfg.kafka.brokers],
    logLevel: logLevel.WARN,
    ...(retry ? { retry } : {}),
    ...(opts.requestTimeout ? { requestTimeout: opts.requestTimeout, connectionTimeout: opts.requestTimeout } : {}),
  });
}
