import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { logOutages, temporalConnectionOptions } from '../../src/clients';
import { loadConfig } from '../../src/config';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';

describe('Temporal connection options: mTLS and an API key are configuration', () => {
  it('plain gRPC on loopback by default; HH_TEMPORAL_* give the address, API key and the client certificate pair, CA and server name', () => {
    expect(temporalConnectionOptions(loadConfig({}))).to.deep.equal({ address: '127.0.0.1:7233' });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hh-tls-'));
    try {
      for (const f of ['client.pem', 'client.key', 'ca.pem']) fs.writeFileSync(path.join(dir, f), `contents of ${f}`);
      const o = temporalConnectionOptions(
        loadConfig({
          HH_TEMPORAL_ADDRESS: 'temporal.example:7233',
          HH_TEMPORAL_API_KEY: 'key-123',
          HH_TEMPORAL_TLS_CERT: path.join(dir, 'client.pem'),
          HH_TEMPORAL_TLS_KEY: path.join(dir, 'client.key'),
          HH_TEMPORAL_TLS_CA: path.join(dir, 'ca.pem'),
          HH_TEMPORAL_TLS_SERVER_NAME: 'temporal.internal',
        }),
      );
      expect(o.address).to.equal('temporal.example:7233');
      expect(o.apiKey).to.equal('key-123');
      const tls = o.tls as { clientCertPair: { crt: Buffer; key: Buffer }; serverRootCACertificate: Buffer; serverNameOverride: string };
      expect(tls.clientCertPair.crt.toString()).to.equal('contents of client.pem');
      expect(tls.clientCertPair.key.toString()).to.equal('contents of client.key');
      expect(tls.serverRootCACertificate.toString()).to.equal('contents of ca.pem');
      expect(tls.serverNameOverride).to.equal('temporal.internal');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(() => loadConfig({ HH_TEMPORAL_TLS_CERT: '/x.pem' })).to.throw(/HH_TEMPORAL_TLS_KEY: mTLS needs both/);
  });
});

describe('Redis outages in the log', () => {
  it('one line when the client loses Redis and one when it has it back, not one per reconnect attempt', () => {
    const client = new EventEmitter();
    const lines: string[] = [];
    logOutages(client as unknown as Redis, (s) => lines.push(s));
    for (let i = 0; i < 5; i++) client.emit('error', new Error('connect ECONNREFUSED 127.0.0.1:6379'));
    expect(lines).to.have.length(1);
    expect(lines[0]).to.match(/^Redis unreachable \(connect ECONNREFUSED/);
    client.emit('ready');
    expect(lines).to.have.length(2);
    expect(lines[1]).to.match(/^Redis reachable again after \d+ ms \(5 failed attempt\(s\)\)$/);
    client.emit('ready'); // a ready without an outage says nothing
    client.emit('error', new Error('Connection is closed.'));
    expect(lines).to.have.length(3);
  });
});
