/*
 * @nmp/ovsdb: a small OVSDB client (RFC 7047 and Open vSwitch's extensions). See README.md.
 */
export { type LeaderPreference, OvsdbClient } from './client.js';
export type { Condition } from './conditions.js';
export { mapOf, namedUuid, type Row, setOf, uuidAtom } from './data.js';
export { parseRemotes, type TlsFiles } from './remote.js';
export { Replica, type RowChange } from './replica.js';
