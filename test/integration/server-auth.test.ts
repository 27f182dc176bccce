/**
 * Least privilege on the real servers `stack:up` started: each refuses a client without
 * credentials, and each role is refused what is not its job.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { ConfigResourceTypes, Kafka, logLevel, type Admin } from 'kafkajs';
import { auth, Client as CassandraClient } from 'cassandra-driver';
import { cassandraClient, kafkaClient, kafkaSasl, opsRedis, redisLogin } from '../../src/clients';
import { migrate } from '../../src/bootstrap/cassandra';
import { grantPipelineAcls, revokePipelineAcls, type PipelineNames } from '../../src/bootstrap/kafka';
import { redisRateLimiter } from '../../src/store/rate-limit';
import { GLOBAL_DIRTY_KEY, REGIONS_KEY, regionTopKey } from '../../src/keys';
import { SERVER_USERS, type RedisRole } from '../../src/secrets';
import { PROJECT_ROOT } from '../../src/config';
import { stackPaths } from '../../scripts/stack/procs';
import { cfg, unique } from '../helpers';
import { freeRedisDb } from '../support/redis';

/** The error a promise rejects with (fails the test if it resolves). */
async function refusal(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a refusal, got an answer');
}

describe('security: every server refuses strangers and each role what is not its job (real stack)', function () {
  this.timeout(60_000);

  describe('Redis (ACL users; the default user is off)', () => {
    let db: number;
    let ops: Redis;
    const clients: Redis[] = [];
    const as = (role: RedisRole) => {
      const r = new Redis({ ...redisLogin(cfg, role), db, maxRetriesPerRequest: 0 });
      clients.push(r);
      return r;
    };
    before(async () => {
      db = await freeRedisDb();
      ops = opsRedis(cfg, db);
    });
    after(async () => {
      for (const c of clients) c.disconnect();
      await ops.flushdb();
      ops.disconnect();
    });

    it('a client without credentials gets NOAUTH; a wrong password WRONGPASS', async () => {
      const anon = new Redis({ host: cfg.host, port: cfg.redis.port, maxRetriesPerRequest: 0, enableReadyCheck: false, lazyConnect: true });
      anon.on('error', () => undefined);
      clients.push(anon);
      expect((await refusal(anon.ping())).message).to.match(/^NOAUTH/);
      expect((await refusal(anon.auth(SERVER_USERS.redis.api, 'not-the-password'))).message).to.match(/^WRONGPASS/);
    });

    it("the API's user reads any key and writes only its rate-limit buckets: no ZINCRBY (direct or in a script), no FLUSHALL", async () => {
      const key = regionTopKey(unique('R'));
      await ops.zadd(key, 5, 'p1');
      const api = as('api');
      expect(await api.zscore(key, 'p1')).to.equal('5');
      expect((await refusal(api.zincrby(key, 1, 'p1'))).message).to.match(/^NOPERM/);
      expect((await refusal(api.eval("return redis.call('ZINCRBY', KEYS[1], 1, 'p1')", 1, key))).message).to.match(/NOPERM|no permissions/);
      expect((await refusal(api.flushall())).message).to.match(/^NOPERM/);
      expect((await refusal(api.set('anything', '1'))).message).to.match(/^NOPERM/);
      expect(await ops.zscore(key, 'p1')).to.equal('5');
      // Its one write: the rate limiter's script, through this very user.
      const limiter = redisRateLimiter(api, { algorithm: 'token-bucket', ratePerSecond: 1, burst: 2 });
      const client = unique('client');
      const verdicts = [await limiter(client), await limiter(client), await limiter(client)].map((v) => v.allowed);
      expect(verdicts).to.deep.equal([true, true, false]);
    });

    it('the ingest user writes its own keys (region:*, regions, global:*, hh:*) and nothing else', async () => {
      const ingest = as('ingest');
      const region = unique('R');
      const key = regionTopKey(region);
      expect(await ingest.zincrby(key, 2, 'p1')).to.equal('2');
      expect(await ingest.sadd(REGIONS_KEY, region)).to.equal(1);
      expect(await ingest.sadd(GLOBAL_DIRTY_KEY, 'all')).to.equal(1);
      expect(await ingest.hset('hh:applied:someone', '0', '1')).to.equal(1);
      expect((await refusal(ingest.set('bench:other', '1'))).message).to.match(/^NOPERM/);
      expect((await refusal(ingest.set('ratelimit:{x}', '1'))).message).to.match(/^NOPERM/);
    });

    it('CONFIG, DEBUG, MODULE, SHUTDOWN, ACL and the flush commands are out of every application user’s reach', async () => {
      const forbidden = [
        ['CONFIG', 'SET', 'maxmemory', '1'],
        ['CONFIG', 'GET', 'requirepass'],
        ['DEBUG', 'SLEEP', '0'],
        ['MODULE', 'LIST'],
        ['FLUSHALL'],
        ['FLUSHDB'],
        ['SHUTDOWN'],
        ['ACL', 'SETUSER', 'x', 'on'],
        ['KEYS', '*'],
        ['SCRIPT', 'FLUSH'],
        ['FUNCTION', 'FLUSH'],
      ];
      for (const role of ['admin', 'ingest', 'api'] as const) {
        for (const cmd of forbidden) {
          const verdict = String(await ops.call('ACL', 'DRYRUN', SERVER_USERS.redis[role], ...cmd));
          expect(verdict, `${role}: ${cmd.join(' ')}`).to.not.equal('OK');
          expect(verdict, `${role}: ${cmd.join(' ')}`).to.match(/no permissions/);
        }
      }
      // The stack's own user can (the dry run is the check, nothing runs).
      expect(String(await ops.call('ACL', 'DRYRUN', SERVER_USERS.redis.ops, 'FLUSHALL'))).to.equal('OK');
    });

    it('redis-server does not run as root', async () => {
      const info = await ops.info('server');
      const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
      const uid = Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
      expect(pid).to.be.above(0);
      expect(uid, 'redis-server uid').to.not.equal(0);
    });
  });

  describe('Kafka (SASL/SCRAM-SHA-512, StandardAuthorizer, ACLs per pipeline)', () => {
    const id = unique('auth');
    const names: PipelineNames = { topic: `${id}.views`, deadLetterTopic: `${id}.dlq`, lateTopic: `${id}.late`, groupId: `${id}.ingest` };
    let admin: Admin;
    const quiet = { logLevel: logLevel.NOTHING, retry: { retries: 0 }, connectionTimeout: 3000, requestTimeout: 5000 };
    const as = (role: 'producer' | 'api' | 'worker') =>
      new Kafka({ clientId: `${id}-${role}`, brokers: [...cfg.kafka.brokers], sasl: kafkaSasl(cfg, role), ...quiet });

    before(async () => {
      admin = kafkaClient(cfg, `${id}-admin`, 'admin').admin();
      await admin.connect();
      await admin.createTopics({
        waitForLeaders: true,
        topics: [names.topic, names.deadLetterTopic, names.lateTopic].map((topic) => ({ topic, numPartitions: 1, replicationFactor: 1 })),
      });
      await grantPipelineAcls(cfg, names);
    });
    after(async () => {
      await admin.deleteTopics({ topics: [names.topic, names.deadLetterTopic, names.lateTopic] }).catch(() => undefined);
      await admin.deleteGroups([names.groupId, `${id}.thief`]).catch(() => undefined);
      await revokePipelineAcls(cfg, names);
      await admin.disconnect();
    });

    it('refuses a client without credentials and one with a wrong password', async () => {
      const anon = new Kafka({ clientId: `${id}-anon`, brokers: [...cfg.kafka.brokers], ...quiet }).admin();
      const e1 = await refusal(anon.connect().then(() => anon.listTopics()));
      await anon.disconnect();
      expect(e1.name).to.match(/KafkaJS/);
      const wrong = new Kafka({
        clientId: `${id}-wrong`,
        brokers: [...cfg.kafka.brokers],
        sasl: { ...kafkaSasl(cfg, 'producer'), password: 'not-the-password' } as never,
        ...quiet,
      }).admin();
      const e2 = await refusal(wrong.connect());
      expect(e2.message).to.match(/SASL SCRAM SHA512 authentication failed/);
    });

    it("revoking one pipeline's ACLs (a test run's) leaves the cluster-wide grant the API's /healthz needs", async () => {
      const other: PipelineNames = { topic: `${id}.x`, deadLetterTopic: `${id}.xd`, lateTopic: `${id}.xl`, groupId: `${id}.xg` };
      await grantPipelineAcls(cfg, other);
      await revokePipelineAcls(cfg, other);
      const api = as('api').admin();
      await api.connect();
      try {
        const described = await api.describeConfigs({
          includeSynonyms: false,
          resources: [{ type: ConfigResourceTypes.BROKER, name: '1', configNames: ['inter.broker.protocol.version'] }],
        });
        expect(described.resources[0].errorCode).to.equal(0);
      } finally {
        await api.disconnect();
      }
    });

    /** kcat (an independent client, through `npm run kcat`) reading the whole topic as `role`: its exit status and messages. */
    const kcatRead = (role: string, topic: string) => {
      const r = spawnSync('npm', ['run', '-s', 'kcat', '--', '--as', role, '-C', '-t', topic, '-o', 'beginning', '-e', '-q'], {
        cwd: PROJECT_ROOT,
        encoding: 'utf8',
        timeout: 30_000,
      });
      return { status: r.status, out: r.stdout, err: r.stderr };
    };

    it('the producer writes the event topic, and cannot write the dead-letter topic or read the event topic', async () => {
      const producer = as('producer').producer();
      await producer.connect();
      try {
        await producer.send({ topic: names.topic, messages: [{ key: 'NA', value: 'produced-by-producer' }] });
        const dlq = await refusal(producer.send({ topic: names.deadLetterTopic, messages: [{ value: '{}' }] }));
        expect(dlq.message).to.match(/not authorized|authorization/i);
      } finally {
        await producer.disconnect();
      }
      const read = kcatRead('producer', names.topic);
      expect(read.out).to.not.include('produced-by-producer');
      expect(read.err).to.match(/Topic authorization failed/);
    });

    it('the workers read the event topic and write the dead-letter topic; the API cannot read either', async () => {
      const producer = as('worker').producer();
      await producer.connect();
      await producer.send({ topic: names.deadLetterTopic, messages: [{ value: 'why' }] });
      const toViews = await refusal(producer.send({ topic: names.topic, messages: [{ key: 'NA', value: 'forged' }] }));
      expect(toViews.message).to.match(/not authorized|authorization/i);
      await producer.disconnect();
      const read = kcatRead('worker', names.topic);
      expect(read.status, read.err).to.equal(0);
      expect(read.out).to.include('produced-by-producer');
      const api = kcatRead('api', names.topic);
      expect(api.out).to.not.include('produced-by-producer');
      expect(api.err).to.match(/Topic authorization failed/);
      expect(kcatRead('api', names.deadLetterTopic).err).to.match(/Topic authorization failed/);
    });
  });

  describe('Cassandra (PasswordAuthenticator, CassandraAuthorizer, roles)', () => {
    const keyspace = unique('hh_auth').toLowerCase();
    const admin = cassandraClient(cfg, 'admin');
    const opened: CassandraClient[] = [];
    const as = (authProvider?: auth.AuthProvider) => {
      const c = new CassandraClient({ contactPoints: [`${cfg.host}:${cfg.cassandra.port}`], localDataCenter: cfg.cassandra.localDataCenter, authProvider });
      opened.push(c);
      return c;
    };
    before(async () => {
      await migrate(cfg, keyspace);
    });
    after(async () => {
      await Promise.all(opened.map((c) => c.shutdown()));
      await admin.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
      await admin.shutdown();
    });

    it('refuses an anonymous client and the default superuser cassandra/cassandra', async () => {
      const anon = await refusal(as().execute('SELECT release_version FROM system.local'));
      expect(JSON.stringify(anon, Object.getOwnPropertyNames(anon)) + anon.message).to.match(/AuthenticationError|requires authentication|authentication/i);
      const dflt = await refusal(as(new auth.PlainTextAuthProvider('cassandra', 'cassandra')).execute('SELECT release_version FROM system.local'));
      expect(JSON.stringify((dflt as { innerErrors?: unknown }).innerErrors ?? {}) + dflt.message).to.match(
        /Provided username cassandra and\/or password are incorrect|authentication/i,
      );
    });

    it("the API's reader role reads and appends to the audit log, and cannot write the record or change the schema", async () => {
      const reader = cassandraClient(cfg, 'reader');
      opened.push(reader);
      await reader.execute(`SELECT * FROM ${keyspace}.posts LIMIT 1`);
      await reader.execute(
        `INSERT INTO ${keyspace}.admin_audit (day, at, id, who, action, target, outcome, detail) VALUES ('2026-01-01', toTimestamp(now()), now(), 't', 'test', 'x', 'ok', '')`,
      );
      const write = await refusal(reader.execute(`INSERT INTO ${keyspace}.posts (post_id, author) VALUES ('p', 'a')`));
      expect(write.message).to.match(/has no MODIFY permission/);
      const ddl = await refusal(reader.execute(`CREATE TABLE ${keyspace}.evil (k int PRIMARY KEY)`));
      expect(ddl.message).to.match(/has no CREATE permission/);
    });

    it('the record writer writes the tables, and cannot drop them or create roles', async () => {
      const writer = cassandraClient(cfg, 'writer');
      opened.push(writer);
      await writer.execute(`INSERT INTO ${keyspace}.posts (post_id, author) VALUES ('p', 'a')`);
      const drop = await refusal(writer.execute(`DROP TABLE ${keyspace}.posts`));
      expect(drop.message).to.match(/has no DROP permission/);
      const role = await refusal(writer.execute(`CREATE ROLE evil WITH SUPERUSER = true AND LOGIN = true AND PASSWORD = 'x'`));
      expect(role.message).to.match(/does not have sufficient privileges|permission/i);
    });
  });

  it('no password of the secrets file appears in the servers’ logs', () => {
    const logs = stackPaths(cfg.stack.dir).logs;
    const secrets = [...Object.values(cfg.credentials.redis), ...Object.values(cfg.credentials.kafka), ...Object.values(cfg.credentials.cassandra)].flatMap(
      (l) => (l.password ? [l.password] : []),
    );
    expect(secrets.length).to.be.above(0);
    const files = fs.readdirSync(logs, { recursive: true }).map((f) => path.join(logs, String(f)));
    for (const f of files) {
      if (!fs.statSync(f).isFile()) continue;
      const text = fs.readFileSync(f, 'utf8');
      for (const s of secrets) expect(text.includes(s), `a password in ${f}`).to.equal(false);
    }
  });
});
