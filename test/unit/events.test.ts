import { expect } from 'chai';
import type { KafkaMessage } from 'kafkajs';
import { eventTimeError, MAX_EVENT_BYTES, MAX_ID_BYTES, validateEvent, validateObject } from '../../src/events';
import { nestingDepth } from '../../src/api/routes/events';
import { cassandraTtl, MAX_CASSANDRA_TTL_S } from '../../src/store/record';
import { triage, DLQ_REASON_HEADER } from '../../src/ingest/triage';

const ok = { event_id: 'e1', post_id: 'p1', region_id: 'NA', timestamp: 1_764_000_000_000 };
const buf = (o: unknown) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o));

describe('event contract', () => {
  it('accepts a minimal event and an optional user_id', () => {
    expect(validateEvent(buf(ok))).to.deep.equal({ ok: true, event: ok });
    expect(validateEvent(buf({ ...ok, user_id: 'u' }))).to.deep.equal({ ok: true, event: { ...ok, user_id: 'u' } });
  });

  it('ignores unknown fields, so a v2 event with an extra optional field reads as v1', () => {
    const v2 = validateEvent(buf({ ...ok, device: 'tv', extra: { nested: [1] } }), '2');
    expect(v2).to.deep.equal({ ok: true, event: ok });
    expect(validateEvent(buf(ok), '1').ok).to.equal(true);
  });

  it('accepts ids of exactly 128 bytes, multi-byte characters counted as bytes', () => {
    expect(validateEvent(buf({ ...ok, post_id: 'p'.repeat(MAX_ID_BYTES) })).ok).to.equal(true);
    expect(validateEvent(buf({ ...ok, post_id: 'é'.repeat(64) })).ok).to.equal(true); // 128 bytes
    const r = validateEvent(buf({ ...ok, post_id: 'é'.repeat(65) })); // 130 bytes, 65 chars
    expect(r).to.deep.equal({ ok: false, reason: 'post_id is longer than 128 bytes' });
  });

  const rejects: [string, Buffer | null, string | undefined, RegExp][] = [
    ['null value', null, undefined, /empty value/],
    ['empty value', Buffer.alloc(0), undefined, /empty value/],
    ['invalid JSON', buf('{"a":'), undefined, /not valid JSON/],
    ['binary garbage', Buffer.from([0xc3, 0x28, 0xff]), undefined, /not valid UTF-8/],
    ['array', buf([ok]), undefined, /JSON object/],
    ['number', buf('42'), undefined, /JSON object/],
    ['missing event_id', buf({ ...ok, event_id: undefined }), undefined, /missing field event_id/],
    ['missing timestamp', buf({ ...ok, timestamp: undefined }), undefined, /missing field timestamp/],
    ['numeric post_id', buf({ ...ok, post_id: 12 }), undefined, /post_id must be a string, got number/],
    ['null region_id', buf({ ...ok, region_id: null }), undefined, /region_id must be a string, got null/],
    ['empty event_id', buf({ ...ok, event_id: '' }), undefined, /event_id must not be empty/],
    ['string timestamp', buf({ ...ok, timestamp: '1764000000000' }), undefined, /timestamp must be/],
    ['fractional timestamp', buf({ ...ok, timestamp: 1.5 }), undefined, /timestamp must be/],
    ['negative timestamp', buf({ ...ok, timestamp: -1 }), undefined, /timestamp must be/],
    ['numeric user_id', buf({ ...ok, user_id: 5 }), undefined, /user_id must be a string/],
    ['unknown schema version', buf(ok), '3', /unknown schema-version "3"/],
    ['non-numeric schema version', buf(ok), 'v1', /unknown schema-version "v1"/],
  ];
  for (const [name, value, version, reason] of rejects) {
    it(`rejects ${name} with a reason`, () => {
      const r = validateEvent(value, version);
      expect(r.ok).to.equal(false);
      if (!r.ok) expect(r.reason).to.match(reason);
    });
  }

  it('validates parsed objects the same way (POST /events)', () => {
    expect(validateObject(ok).ok).to.equal(true);
    expect(validateObject('x')).to.deep.equal({ ok: false, reason: 'value must be a JSON object' });
  });
});

describe('ingest triage of a partition batch', () => {
  const now = 1_764_000_000_000;
  const msg = (offset: number, value: Buffer | null, headers: Record<string, string> = {}): KafkaMessage => ({
    offset: String(offset),
    key: Buffer.from('NA'),
    value,
    headers,
    timestamp: String(now),
    attributes: 0,
  });

  it('groups valid events by region in offset order and dead-letters the rest with reason and source', () => {
    const { byRegion, earliest, dead } = triage(
      'views',
      3,
      [
        msg(10, buf(ok)),
        msg(11, buf('garbage')),
        msg(12, buf({ ...ok, event_id: 'e2', region_id: 'EU' })),
        msg(13, buf({ ...ok, event_id: 'e3', timestamp: ok.timestamp - 5000 })),
        msg(14, buf(ok), { 'schema-version': '7' }),
        msg(15, buf({ ...ok, event_id: 'old', timestamp: now - 49 * 3_600_000 })),
      ],
      { maxAgeMs: 48 * 3_600_000, maxAheadMs: 300_000, now, windows: [] },
    );
    expect([...byRegion.keys()]).to.deep.equal(['NA', 'EU']);
    expect(byRegion.get('NA')!.map((e) => e.offset)).to.deep.equal(['10', '13']);
    expect(Object.fromEntries(earliest)).to.deep.equal({ NA: ok.timestamp - 5000, EU: ok.timestamp });
    expect(dead.map((d) => d.headers['dlq-source'])).to.deep.equal(['views/3/11', 'views/3/14', 'views/3/15']);
    expect(String(dead[0].headers[DLQ_REASON_HEADER])).to.match(/not valid JSON/);
    expect(String(dead[1].headers[DLQ_REASON_HEADER])).to.match(/schema-version/);
    expect(String(dead[2].headers[DLQ_REASON_HEADER])).to.match(/more than 172800000 ms before the clock/);
    expect(dead[0].value!.toString()).to.equal('garbage');
  });
});

describe('event times, reserved regions and sizes at the door', () => {
  const now = 1_764_000_000_000;
  const limits = { maxAheadMs: 300_000, maxAgeMs: 48 * 3_600_000 };
  const opts = { maxAgeMs: limits.maxAgeMs, maxAheadMs: limits.maxAheadMs, now, windows: [] };
  const rec = (offset: number, value: object | string, key = 'NA'): KafkaMessage => ({
    offset: String(offset),
    key: Buffer.from(key),
    value: Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)),
    headers: {},
    timestamp: String(now),
    attributes: 0,
  });

  it('accepts event times from the oldest allowed age to the allowed skew ahead of the clock', () => {
    expect(eventTimeError(now, now, limits)).to.equal(undefined);
    expect(eventTimeError(now + 300_000, now, limits)).to.equal(undefined);
    expect(eventTimeError(now + 300_001, now, limits)).to.match(/more than 300000 ms ahead of the clock/);
    expect(eventTimeError(now - 48 * 3_600_000 - 1, now, limits)).to.match(/more than 172800000 ms before the clock/);
  });

  it('dead-letters a far-future event (year 2100) with its reason; it moves nothing, the events after it count', () => {
    const t = triage('views', 3, [rec(1, { ...ok, event_id: 'far', timestamp: 4_102_444_800_000 }), rec(2, { ...ok, event_id: 'now', timestamp: now })], opts);
    expect(t.dead.map((d) => String(d.headers[DLQ_REASON_HEADER]))).to.deep.equal([
      `timestamp 4102444800000 is more than 300000 ms ahead of the clock (${now})`,
    ]);
    expect(t.maxEventTime).to.equal(now);
    expect(t.byRegion.get('NA')!.map((e) => e.event.event_id)).to.deep.equal(['now']);
  });

  it('refuses region_id "global" (the merge of every region) and values larger than an event may be', () => {
    expect(validateObject({ ...ok, region_id: 'global' })).to.deep.equal({
      ok: false,
      reason: 'region_id "global" is reserved (region=global is the merge of every region)',
    });
    const big = Buffer.from(JSON.stringify({ ...ok, note: 'x'.repeat(MAX_EVENT_BYTES) }));
    expect(validateEvent(big)).to.deep.equal({ ok: false, reason: `value is ${big.length} bytes, more than the ${MAX_EVENT_BYTES} an event may have` });
  });

  it('counts an event under its own region_id when the Kafka key names another, and counts the mismatch', () => {
    const t = triage('views', 0, [rec(1, { ...ok, event_id: 'a', region_id: 'EU' }, 'NA'), rec(2, { ...ok, event_id: 'b' }, 'NA')], opts);
    expect([...t.byRegion.keys()]).to.deep.equal(['EU', 'NA']);
    expect(t.keyMismatch).to.equal(1);
    // Compared as bytes: a multi-byte name matches its own UTF-8 key; a key of the same length
    // that differs does not; a record without a key has nothing to mismatch.
    const keyless = { ...rec(5, { ...ok, event_id: 'e' }), key: null };
    const u = triage(
      'views',
      0,
      [rec(3, { ...ok, event_id: 'c', region_id: 'ÅLAND' }, 'ÅLAND'), rec(4, { ...ok, event_id: 'd', region_id: 'NA' }, 'NB'), keyless],
      opts,
    );
    expect(u.keyMismatch).to.equal(1);
    expect([...u.byRegion.keys()]).to.deep.equal(['ÅLAND', 'NA']);
  });
});

describe('bounds on what one input can cost', () => {
  it('measures how deeply a JSON body nests before parsing it, stopping at the limit', () => {
    expect(nestingDepth('[{"a":[1,2]},{"b":"[[[[[["}]', 8)).to.equal(0);
    expect(nestingDepth('[[[', 8)).to.equal(3);
    expect(nestingDepth('['.repeat(10_000_000), 8)).to.equal(9); // stops at the limit, whatever the length
  });

  it('never writes a Cassandra TTL above its 20-year limit (a far-future window would overflow 32 bits)', () => {
    const now = 1_764_000_000_000;
    expect(cassandraTtl(now + 3_600_000, now)).to.equal(3600);
    expect(cassandraTtl(4_102_444_800_000 + 8 * 86_400_000, now)).to.equal(MAX_CASSANDRA_TTL_S);
  });
});
