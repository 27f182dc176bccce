/** Everything the servers need before the pipeline runs: topics, keyspace migrations, namespace. */
import type { Config } from '../config';
import { ensureTopics } from './kafka';
import { migrate } from './cassandra';
import { ensureNamespaceAndSearchAttributes } from './temporal';

export async function bootstrap(cfg: Config): Promise<string[]> {
  const [a, b, c] = await Promise.all([ensureTopics(cfg), migrate(cfg), ensureNamespaceAndSearchAttributes(cfg)]);
  return [...a, ...b, ...c];
}
