/**
 * How each of the four servers is installed (once, cached) and started on 127.0.0.1.
 * Versions, sources and the measured start times are in the README ("What runs where").
 */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROJECT_ROOT, type Config } from '../../src/config';
import { SERVER_USERS, type KafkaRole, type RedisRole } from '../../src/secrets';
import { PROBES, SERVICES, timed, type Probe, type ServiceName } from '../../src/health';
import { scrapeTargetsDir } from '../../src/runtime/scrape-targets';
import { type Paths, runStep, startDetached } from './procs';
import { dynamicConfigFlags } from './temporal-config';

export const VERSIONS = {
  /** Debian 12's package. */
  redis: '7.0',
  kafka: '3.9.1',
  cassandra: '5.0.6',
  /** The newest CLI tag whose go.mod has no replace directive; embeds server 1.29.1 and UI 2.42.1. */
  temporalCli: '1.5.1',
  /** Temporal's Java test server, for time-skipping workflow tests. */
  temporalTestServer: '1.32.0',
} as const;

export interface ServiceDef {
  name: StackService;
  /** Seconds the first health check may take after a start (Cassandra is slow on 2 cores). */
  startTimeoutS: number;
  /**
   * The nice value of the process's scheduling group (see `setGroupNice`): lower runs first
   * when the cores are contended. Redis (every flush and read waits for it) first, then Kafka
   * and Temporal (the windows' lifecycle and the global merge), then the record and the metrics.
   */
  groupNice: number;
  /** Idempotent: does nothing when the artifacts are already present. */
  install(cfg: Config): Promise<void>;
  /** Writes config, prepares storage, spawns the process; returns its PID. */
  start(cfg: Config, p: Paths): Promise<number>;
}

const SELF_DIR = __dirname;

function onPath(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Finds JDK 17's java (Cassandra 5.0 and Kafka 3.9 both run on it; Cassandra not on newer JDKs). */
export function java17(): string {
  const candidates = [process.env.HH_JAVA_HOME && path.join(process.env.HH_JAVA_HOME, 'bin/java'), '/usr/lib/jvm/java-17-openjdk-amd64/bin/java'].filter(
    Boolean,
  ) as string[];
  for (const c of candidates) if (fs.existsSync(c)) return c;
  throw new Error('java: no JDK 17 found (set HH_JAVA_HOME to a JDK 17, or apt-get install openjdk-17-jre-headless)');
}

/** apt holds a lock: installs run one after another (the services install in parallel). */
let aptQueue: Promise<void> = Promise.resolve();

function aptInstall(packages: string[]): Promise<void> {
  const run = async () => {
    if (process.getuid?.() !== 0) {
      throw new Error(`${packages.join(', ')} missing and not root; install them with: sudo apt-get install -y ${packages.join(' ')}`);
    }
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    await runStep('apt', 'apt-get update', 'apt-get', ['update', '-q'], env);
    await runStep('apt', `apt-get install ${packages.join(' ')}`, 'apt-get', ['install', '-y', '-q', '--no-install-recommends', ...packages], env);
  };
  const next = aptQueue.then(run);
  aptQueue = next.catch(() => undefined);
  return next;
}

/** Resolves a pom's runtime jars from Maven Central into <cache>/<name>-<version>/lib, once. */
async function mavenLib(cfg: Config, name: 'kafka' | 'cassandra' | 'temporal-test-server', version: string): Promise<string> {
  const dir = path.join(cfg.stack.cacheDir, `${name}-${version}`);
  const lib = path.join(dir, 'lib');
  if (fs.existsSync(path.join(dir, '.complete'))) return lib;
  if (!onPath('mvn')) throw new Error(`${name}: Maven (mvn) is needed once to fetch the jars: apt-get install -y maven`);
  process.stdout.write(`[${name}] fetching ${name} ${version} jars from Maven Central (first run only)\n`);
  const staging = `${lib}.partial`;
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  await runStep(name, 'Maven copy-dependencies', 'mvn', [
    '-B',
    '-f',
    path.join(SELF_DIR, name, 'pom.xml'),
    `-D${name}.version=${version}`,
    'dependency:copy-dependencies',
    '-DincludeScope=runtime',
    `-DoutputDirectory=${staging}`,
  ]);
  fs.rmSync(lib, { recursive: true, force: true });
  fs.renameSync(staging, lib);
  fs.writeFileSync(path.join(dir, '.complete'), new Date().toISOString());
  return lib;
}

const kafkaLib = (cfg: Config) => path.join(cfg.stack.cacheDir, `kafka-${VERSIONS.kafka}`, 'lib');
const cassandraLib = (cfg: Config) => path.join(cfg.stack.cacheDir, `cassandra-${VERSIONS.cassandra}`, 'lib');
export const temporalBin = (cfg: Config) => path.join(cfg.stack.cacheDir, `temporal-cli-${VERSIONS.temporalCli}`, 'temporal');

const redis: ServiceDef = {
  name: 'redis',
  groupNice: -10,
  startTimeoutS: 20,
  async install() {
    if (!onPath('redis-server')) await aptInstall(['redis-server']);
  },
  async start(cfg, p) {
    const dir = path.join(p.data, 'redis');
    fs.mkdirSync(dir, { recursive: true });
    // Run as Debian's unprivileged `redis` user where the stack is started as root.
    const runAs = systemUser('redis');
    const conf = path.join(p.conf, 'redis.conf');
    const aclFile = path.join(p.conf, 'redis-users.acl');
    fs.writeFileSync(aclFile, redisAcl(cfg), { mode: 0o600 });
    fs.chmodSync(aclFile, 0o600);
    // No RDB/AOF: Redis is the rebuildable rank index, Cassandra and Kafka are the record.
    fs.writeFileSync(
      conf,
      [
        `bind ${cfg.host}`,
        `port ${cfg.redis.port}`,
        'protected-mode yes',
        'daemonize no',
        `dir ${dir}`,
        'save ""',
        'appendonly no',
        // A large key (a window, a pane, a dedup slice) dropped by DEL, expiry or FLUSHDB is
        // freed on Redis's background thread, not inside the call that drops it (a FLUSHDB of
        // a 1M-post bench state held Redis 717 ms; a DEL of a folded pane, the script doing it).
        'lazyfree-lazy-user-del yes',
        'lazyfree-lazy-server-del yes',
        'lazyfree-lazy-expire yes',
        'lazyfree-lazy-eviction yes',
        'lazyfree-lazy-user-flush yes',
        'logfile ""',
        // Users (and their hashed passwords) live in the ACL file; the default user is off.
        `aclfile ${aclFile}`,
        'enable-debug-command no',
        'enable-module-command no',
        '',
      ].join('\n'),
    );
    if (runAs) {
      for (const f of [dir, aclFile, conf]) fs.chownSync(f, runAs.uid, runAs.gid);
      return startDetached(p, 'redis', 'setpriv', [`--reuid=${runAs.uid}`, `--regid=${runAs.gid}`, '--init-groups', 'redis-server', conf]);
    }
    return startDetached(p, 'redis', 'redis-server', [conf]);
  },
};

/** The uid/gid of a Debian package's system user when this process is root (else undefined: the server runs as the caller). */
function systemUser(name: string): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`${name}: running as root and there is no \`${name}\` user to run the server as (its Debian package creates it)`);
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

const sha256 = (s: string) => crypto.createHash('sha256').update(s).digest('hex');

/**
 * The ACL users (src/secrets.ts SERVER_USERS.redis), passwords stored as SHA-256 hashes.
 * Application users never reach server administration: CONFIG, DEBUG, MODULE, SHUTDOWN,
 * FLUSHALL/FLUSHDB, KEYS, CLIENT, ACL (all in @dangerous), FUNCTION, SCRIPT FLUSH/KILL.
 */
export function redisAcl(cfg: Config): string {
  const pw = (role: RedisRole) => {
    const v = cfg.credentials.redis[role].password;
    if (!v) throw new Error(`redis: no password for user ${SERVER_USERS.redis[role]} (stack:up writes them to .stack/secrets.json)`);
    return `#${sha256(v)}`;
  };
  const { ops, admin, ingest, api } = SERVER_USERS.redis;
  const noAdmin = '+@all -@dangerous +info -function -script|flush -script|kill';
  return [
    'user default off resetkeys resetchannels -@all',
    // The stack's own scripts, tests and benchmarks: everything (not an application user).
    `user ${ops} on ${pw('ops')} ~* &* +@all`,
    // Operators' hand tools: every key, no server administration.
    `user ${admin} on ${pw('admin')} ~* resetchannels ${noAdmin}`,
    // The ingest workers: their own keys (the regions and their index, the global merge, positions and epoch).
    `user ${ingest} on ${pw('ingest')} ~region:* ~regions ~global:* ~hh:* resetchannels ${noAdmin}`,
    // The API: reads any key, writes only its rate-limit buckets (also inside scripts; TIME is the limiter's clock).
    `user ${api} on ${pw('api')} %R~* ~ratelimit:* resetchannels -@all +@read +@write +@connection +@transaction +@scripting -@dangerous +info +time -function -fcall -fcall_ro -script|flush -script|kill`,
    '',
  ].join('\n');
}

const kafka: ServiceDef = {
  name: 'kafka',
  groupNice: 0,
  startTimeoutS: 90,
  async install(cfg) {
    await mavenLib(cfg, 'kafka', VERSIONS.kafka);
  },
  async start(cfg, p) {
    const logDir = path.join(p.data, 'kafka');
    const appLogs = path.join(p.logs, 'kafka-server');
    fs.mkdirSync(logDir, { recursive: true });
    fs.mkdirSync(appLogs, { recursive: true });
    const props = path.join(p.conf, 'kafka-server.properties');
    const admin = cfg.credentials.kafka.admin;
    if (!admin.password) throw new Error('kafka: no password for hh-admin (stack:up writes them to .stack/secrets.json)');
    const jaas = (module: string, extra = '') => `${module} required username="${admin.user}" password="${admin.password}"${extra};`;
    fs.writeFileSync(
      props,
      [
        'process.roles=broker,controller',
        'node.id=1',
        `controller.quorum.voters=1@${cfg.host}:${cfg.kafka.controllerPort}`,
        // Clients log in with SASL/SCRAM-SHA-512 (users created at format time, below); the
        // controller listener takes SASL/PLAIN with the super user only (SCRAM credentials
        // live in the metadata log the controller serves, so it cannot use them itself).
        `listeners=CLIENT://${cfg.host}:${cfg.kafka.port},CONTROLLER://${cfg.host}:${cfg.kafka.controllerPort}`,
        `advertised.listeners=CLIENT://${cfg.host}:${cfg.kafka.port}`,
        'controller.listener.names=CONTROLLER',
        'inter.broker.listener.name=CLIENT',
        'listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT',
        'sasl.enabled.mechanisms=SCRAM-SHA-512',
        'sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512',
        'listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512',
        `listener.name.client.scram-sha-512.sasl.jaas.config=${jaas('org.apache.kafka.common.security.scram.ScramLoginModule')}`,
        'sasl.mechanism.controller.protocol=PLAIN',
        'listener.name.controller.sasl.enabled.mechanisms=PLAIN',
        `listener.name.controller.plain.sasl.jaas.config=${jaas('org.apache.kafka.common.security.plain.PlainLoginModule', ` user_${admin.user}="${admin.password}"`)}`,
        // Nothing is allowed without an ACL (src/bootstrap/kafka.ts grants them per pipeline).
        'authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer',
        'allow.everyone.if.no.acl.found=false',
        `super.users=User:${admin.user}`,
        // One node: internal topics cannot have more replicas than brokers, or groups never find a coordinator.
        'offsets.topic.replication.factor=1',
        'offsets.topic.num.partitions=8',
        'transaction.state.log.replication.factor=1',
        'transaction.state.log.min.isr=1',
        // A new group waits this long for its first members: the runtime's workers, started
        // together, then join in one generation instead of forcing a rebalance right away.
        'group.initial.rebalance.delay.ms=1500',
        'num.partitions=1',
        'auto.create.topics.enable=false',
        `log.dirs=${logDir}`,
        'log.retention.hours=168',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    fs.chmodSync(props, 0o600);
    const log4j = path.join(p.conf, 'kafka-log4j.properties');
    fs.writeFileSync(
      log4j,
      [
        'log4j.rootLogger=WARN, stdout',
        'log4j.appender.stdout=org.apache.log4j.ConsoleAppender',
        'log4j.appender.stdout.layout=org.apache.log4j.PatternLayout',
        'log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n',
        'log4j.logger.kafka.server.KafkaServer=INFO',
        'log4j.logger.kafka.server.BrokerServer=INFO',
        '',
      ].join('\n'),
    );
    const java = java17();
    const cp = `${kafkaLib(cfg)}/*`;
    const common = [`-Dlog4j.configuration=file:${log4j}`, `-Dkafka.logs.dir=${appLogs}`, '-cp', cp];
    // SCRAM users are written into the metadata log when it is formatted: a log dir formatted
    // before the stack had users (no marker) cannot be used by this stack's clients.
    const scramMarker = path.join(logDir, '.hh-scram-users');
    if (fs.existsSync(path.join(logDir, 'meta.properties')) && !fs.existsSync(scramMarker)) {
      throw new Error(
        `kafka: ${logDir} was formatted before the stack had Kafka users (SASL/SCRAM); stop the stack and remove ${p.data} (its data goes) to start afresh`,
      );
    }
    if (!fs.existsSync(path.join(logDir, 'meta.properties'))) {
      // A KRaft log dir is formatted once with a cluster id (a base64url UUID, as Kafka's own
      // Uuid). Never one starting with "-": the tool's argument parser takes it for an option
      // ("--cluster-id: expected one argument"; happened in a clean-clone CI run).
      let clusterId = crypto.randomBytes(16).toString('base64url');
      while (clusterId.startsWith('-')) clusterId = crypto.randomBytes(16).toString('base64url');
      const scram = (Object.keys(SERVER_USERS.kafka) as KafkaRole[]).flatMap((role) => {
        const login = cfg.credentials.kafka[role];
        if (!login.password) throw new Error(`kafka: no password for ${login.user} (stack:up writes them to .stack/secrets.json)`);
        return ['--add-scram', `SCRAM-SHA-512=[name=${login.user},password=${login.password}]`];
      });
      await runStep(
        'kafka',
        'format KRaft log dir',
        java,
        [...common, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', props, '--ignore-formatted', ...scram],
        process.env,
        { hideArgs: true },
      );
      fs.writeFileSync(scramMarker, (Object.values(SERVER_USERS.kafka) as string[]).join('\n') + '\n');
    }
    return startDetached(p, 'kafka', java, [
      '-Xms512m',
      '-Xmx512m',
      '-XX:+UseG1GC',
      '-XX:MaxGCPauseMillis=20',
      '-Djava.awt.headless=true',
      `-Djava.io.tmpdir=${p.tmp}`,
      ...common,
      'kafka.Kafka',
      props,
    ]);
  },
};

/** The flags of Cassandra's conf/jvm17-server.options that a jar-only start needs on Java 17. */
const CASSANDRA_JAVA17 = [
  '-Djdk.attach.allowAttachSelf=true',
  ...[
    'java.base/jdk.internal.misc',
    'java.management.rmi/com.sun.jmx.remote.internal.rmi',
    'java.rmi/sun.rmi.registry',
    'java.rmi/sun.rmi.server',
    'java.sql/java.sql',
    'java.base/java.lang.ref',
    'jdk.unsupported/sun.misc',
    'jdk.compiler/com.sun.tools.javac.file',
    'jdk.attach/sun.tools.attach',
  ].map((m) => `--add-exports=${m}=ALL-UNNAMED`),
  ...[
    'java.base/java.lang.module',
    'java.base/jdk.internal.loader',
    'java.base/jdk.internal.ref',
    'java.base/jdk.internal.reflect',
    'java.base/jdk.internal.math',
    'java.base/jdk.internal.module',
    'java.base/jdk.internal.util.jar',
    'java.base/sun.nio.ch',
    'java.base/java.io',
    'java.base/java.lang.reflect',
    'java.base/java.lang',
    'java.base/java.util',
    'jdk.management/com.sun.management.internal',
    'jdk.compiler/com.sun.tools.javac',
  ].map((m) => `--add-opens=${m}=ALL-UNNAMED`),
  '-Dio.netty.tryReflectionSetAccessible=true',
];

const cassandra: ServiceDef = {
  name: 'cassandra',
  groupNice: 5,
  startTimeoutS: 240,
  async install(cfg) {
    await mavenLib(cfg, 'cassandra', VERSIONS.cassandra);
  },
  async start(cfg, p) {
    const dir = path.join(p.data, 'cassandra');
    const sub = (s: string) => path.join(dir, s);
    for (const s of ['data', 'commitlog', 'saved_caches', 'hints', 'cdc_raw']) fs.mkdirSync(sub(s), { recursive: true });
    const yaml = path.join(p.conf, 'cassandra.yaml');
    fs.writeFileSync(
      yaml,
      [
        'cluster_name: heavy-hitters',
        'num_tokens: 1',
        'partitioner: org.apache.cassandra.dht.Murmur3Partitioner',
        'endpoint_snitch: SimpleSnitch',
        'commitlog_sync: periodic',
        'commitlog_sync_period: 10000ms',
        'seed_provider:',
        '  - class_name: org.apache.cassandra.locator.SimpleSeedProvider',
        '    parameters:',
        `      - seeds: "${cfg.host}:${cfg.cassandra.storagePort}"`,
        `listen_address: ${cfg.host}`,
        `rpc_address: ${cfg.host}`,
        `storage_port: ${cfg.cassandra.storagePort}`,
        `native_transport_port: ${cfg.cassandra.port}`,
        'start_native_transport: true',
        `data_file_directories: [${sub('data')}]`,
        `commitlog_directory: ${sub('commitlog')}`,
        `saved_caches_directory: ${sub('saved_caches')}`,
        `hints_directory: ${sub('hints')}`,
        `cdc_raw_directory: ${sub('cdc_raw')}`,
        'concurrent_reads: 8',
        'concurrent_writes: 16',
        'concurrent_counter_writes: 8',
        // Small node: keep memtables and caches modest so the four servers fit together.
        'memtable_heap_space: 128MiB',
        'memtable_offheap_space: 128MiB',
        'key_cache_size: 16MiB',
        // A checkpoint of up to 100,000 entries and 8 MiB is one single-partition batch (atomic, larger
        // ones are staged: src/store/record.ts); allow such batches.
        'batch_size_warn_threshold: 4MiB',
        'batch_size_fail_threshold: 30MiB',
        'commitlog_segment_size: 64MiB',
        // Tests and benches drop their keyspaces: no snapshot of each left on disk.
        'auto_snapshot: false',
        // Logins and grants (src/bootstrap/cassandra.ts replaces the default superuser and makes the roles).
        'authenticator: PasswordAuthenticator',
        'authorizer: CassandraAuthorizer',
        'role_manager: CassandraRoleManager',
        '',
      ].join('\n'),
    );
    const logback = path.join(p.conf, 'cassandra-logback.xml');
    fs.writeFileSync(
      logback,
      `<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
  <logger name="org.apache.cassandra" level="INFO"/>
  <logger name="com.thinkaurelius.thrift" level="ERROR"/>
</configuration>
`,
    );
    const heap = `${cfg.cassandra.heapMb}m`;
    return startDetached(p, 'cassandra', java17(), [
      `-Xms${heap}`,
      `-Xmx${heap}`,
      '-Xss512k',
      '-XX:+UseG1GC',
      '-XX:MaxGCPauseMillis=300',
      '-XX:+AlwaysPreTouch',
      '-Djava.awt.headless=true',
      '-Djava.net.preferIPv4Stack=true',
      ...CASSANDRA_JAVA17,
      `-Dcassandra.config=file://${yaml}`,
      `-Dcassandra.storagedir=${dir}`,
      '-Dcassandra-foreground=yes',
      `-Dcassandra.logdir=${p.logs}`,
      `-Dlogback.configurationFile=${logback}`,
      '-Dcassandra.skip_wait_for_gossip_to_settle=0',
      // The default superuser is made at once (not 10 s later), for the bootstrap to replace it.
      '-Dcassandra.superuser_setup_delay_ms=0',
      `-Djna.tmpdir=${p.tmp}`,
      `-Djava.io.tmpdir=${p.tmp}`,
      '-cp',
      `${cassandraLib(cfg)}/*`,
      'org.apache.cassandra.service.CassandraDaemon',
    ]);
  },
};

const temporal: ServiceDef = {
  name: 'temporal',
  // Not behind the hot path: with one other busy process on the machine, Temporal at 5 ran the
  // window workflows and the global merge tens of seconds late (windows closed after their keys expired).
  groupNice: 0,
  startTimeoutS: 60,
  async install(cfg) {
    const bin = temporalBin(cfg);
    if (fs.existsSync(bin)) return;
    if (!onPath('go')) throw new Error('temporal: Go is needed once to build the Temporal CLI (go install)');
    process.stdout.write(`[temporal] building the Temporal CLI v${VERSIONS.temporalCli} with go install (first run only; a few minutes)\n`);
    const staging = path.join(path.dirname(bin), 'build');
    fs.mkdirSync(staging, { recursive: true });
    await runStep('temporal', 'go install', 'go', ['install', '-v', `github.com/temporalio/cli/cmd/temporal@v${VERSIONS.temporalCli}`], {
      ...process.env,
      CGO_ENABLED: '0',
      GOBIN: staging,
    });
    fs.renameSync(path.join(staging, 'temporal'), bin);
    fs.rmSync(staging, { recursive: true, force: true });
  },
  async start(cfg, p) {
    const dir = path.join(p.data, 'temporal');
    fs.mkdirSync(dir, { recursive: true });
    return startDetached(p, 'temporal', temporalBin(cfg), [
      'server',
      'start-dev',
      '--ip',
      cfg.host,
      '--port',
      String(cfg.temporal.port),
      '--ui-port',
      String(cfg.temporal.uiPort),
      '--db-filename',
      path.join(dir, 'temporal.db'),
      '--namespace',
      cfg.temporal.namespace,
      '--log-level',
      'warn',
      // The limits the project relies on (temporal/dynamic-config.yaml); the namespace and the
      // search attributes are registered by the bootstrap from temporal/*.json.
      ...dynamicConfigFlags(),
    ]);
  },
};

/** The project's rules (recording and alerting), checked by `promtool check rules` and `promtool test rules` in npm test. */
export const PROMETHEUS_RULES = path.join(PROJECT_ROOT, 'ops', 'prometheus', 'heavy-hitters.rules.yml');

const prometheus: ServiceDef = {
  name: 'prometheus',
  groupNice: 10,
  startTimeoutS: 30,
  async install() {
    if (!onPath('prometheus') || !onPath('promtool')) await aptInstall(['prometheus']);
  },
  async start(cfg, p) {
    const dir = path.join(p.data, 'prometheus');
    fs.mkdirSync(dir, { recursive: true });
    const targets = scrapeTargetsDir(cfg.stack.dir);
    fs.mkdirSync(targets, { recursive: true });
    const conf = path.join(p.conf, 'prometheus.yml');
    // Every runtime registers its API (whose /metrics aggregates all its workers) in `targets`.
    fs.writeFileSync(
      conf,
      [
        'global:',
        '  scrape_interval: 5s',
        '  evaluation_interval: 5s',
        'rule_files:',
        `  - ${PROMETHEUS_RULES}`,
        'scrape_configs:',
        '  - job_name: heavy-hitters',
        '    metrics_path: /metrics',
        '    file_sd_configs:',
        `      - files: ['${targets}/*.json']`,
        '        refresh_interval: 5s',
        '',
      ].join('\n'),
    );
    const args = [
      `--config.file=${conf}`,
      `--storage.tsdb.path=${dir}`,
      '--storage.tsdb.retention.time=2d',
      `--web.listen-address=${cfg.host}:${cfg.prometheus.port}`,
      '--log.level=warn',
    ];
    const runAs = systemUser('prometheus');
    if (runAs) {
      fs.chownSync(dir, runAs.uid, runAs.gid);
      return startDetached(p, 'prometheus', 'setpriv', [`--reuid=${runAs.uid}`, `--regid=${runAs.gid}`, '--init-groups', 'prometheus', ...args]);
    }
    return startDetached(p, 'prometheus', 'prometheus', args);
  },
};

export const SERVICE_DEFS: Record<StackService, ServiceDef> = { redis, kafka, cassandra, temporal, prometheus };

/** The stack's services: the four servers of the system, and Prometheus watching it. */
export type StackService = ServiceName | 'prometheus';
export const STACK_SERVICES: readonly StackService[] = [...SERVICES, 'prometheus'];

export async function probePrometheus(cfg: Config, timeoutMs = 3000): Promise<Probe> {
  return timed('prometheus', timeoutMs, async () => {
    const base = `http://${cfg.host}:${cfg.prometheus.port}`;
    const ready = await fetch(`${base}/-/ready`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!ready.ok) throw new Error(`not ready (HTTP ${ready.status})`);
    const info = (await (await fetch(`${base}/api/v1/status/buildinfo`, { signal: AbortSignal.timeout(timeoutMs) })).json()) as { data?: { version?: string } };
    return { version: info.data?.version ?? 'unknown', detail: `${base}/alerts` };
  });
}

export const STACK_PROBES: Record<StackService, (cfg: Config, timeoutMs?: number) => Promise<Probe>> = { ...PROBES, prometheus: probePrometheus };

/**
 * Tools beside the servers, from Debian: kcat (an independent Kafka client: `npm run kcat`,
 * the tests) and, for the tests only (`forTests`), Chromium (the live page's browser test,
 * driven by puppeteer-core).
 */
export async function installTools(forTests: boolean): Promise<void> {
  const missing = [!onPath('kcat') && 'kafkacat', forTests && !onPath('chromium') && 'chromium'].filter(Boolean) as string[];
  if (missing.length) await aptInstall(missing);
}

/** The wrapper the SDK's TestWorkflowEnvironment.createTimeSkipping runs (`<wrapper> <port> --enable-time-skipping`). */
export const testServerWrapper = (cfg: Config) => path.join(cfg.stack.cacheDir, `temporal-test-server-${VERSIONS.temporalTestServer}`, 'run.sh');

/** Installs the time-skipping test server (jars + wrapper script), once. */
export async function installTestServer(cfg: Config): Promise<void> {
  const wrapper = testServerWrapper(cfg);
  if (fs.existsSync(wrapper)) return;
  const lib = await mavenLib(cfg, 'temporal-test-server', VERSIONS.temporalTestServer);
  // exec: the SDK stops the server by the PID it spawned. C1 only: it starts in about half a second.
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${java17()} -XX:TieredStopAtLevel=1 -Xmx512m -cp '${lib}/*' io.temporal.testserver.TestServer "$@"\n`, {
    mode: 0o755,
  });
}
