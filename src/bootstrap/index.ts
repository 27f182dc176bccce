/** Everything the servers need before the pipeline runs: topics, keyspace migrations, namespace. */
import type { Config } from '../config';
import { ensureTopics, grantPipelineAcls } from './kafka';
import { ensureRoles, migrate } from './cassandra';
import { ensureNamespaceAndSearchAttributes } from './temporal';

export async function bootstrap(cfg: Config): Promise<string[]> {
  const roles = await ensureRoles(cfg);
  const [a, b, c] = await Promise.all([
    ensureTopics(cfg).then(async (notes) => [...notes, ...(await grantPipelineAcls(cfg))]),
    migrate(cfg),
    ensureNamespaceAndSearchAttributes(cfg),
  ]);
  return [...roles, ...a, ...b, ...c];
}
