/** Decoding what the record hands the driver as an already-encoded value, with the driver's own decoder. */
import { types } from 'cassandra-driver';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const Encoder = require('cassandra-driver/lib/encoder') as new (
  v: number,
  o: object,
) => {
  encode(v: unknown, t: unknown): Buffer;
  decode(b: Buffer, t: unknown): Map<string, types.Long>;
};

/** The column type of region_counts.counts: map<text, bigint>. */
export const COUNTS_TYPE = { code: types.dataTypes.map, info: [{ code: types.dataTypes.text }, { code: types.dataTypes.bigint }] };

/** The driver's encoder at a protocol version, decoding maps as Map (as the project's clients do). */
export const driverEncoder = (version = 4) => new Encoder(version, { encoding: { map: Map } });

/** A counts parameter (an encoded map<text, bigint>) as post -> count. */
export function decodeCounts(param: unknown): Map<string, number> {
  if (!Buffer.isBuffer(param)) throw new TypeError('a counts parameter is an encoded Buffer');
  return new Map([...driverEncoder().decode(param, COUNTS_TYPE)].map(([p, c]) => [p, Number(c)]));
}
