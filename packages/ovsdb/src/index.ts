/*
 * @nmp/ovsdb: a small OVSDB client (RFC 7047 and Open vSwitch's extensions). See README.md.
 */
export {
  type ClientState,
  type ClientStats,
  type LeaderPreference,
  type MonitorMethod,
  OvsdbClient,
  type OvsdbClientOptions,
  type OvsdbLogger,
} from './client.js';
export { type Condition, compileWhere, equalDatum } from './conditions.js';
export {
  type Atom,
  applyDiff,
  type Datum,
  decodeAtom,
  decodeDatum,
  decodeMapKeeping,
  defaultDatum,
  encodeAtom,
  encodeDatum,
  isUuid,
  mapOf,
  namedUuid,
  type Row,
  setOf,
  uuidAtom,
  ZERO_UUID,
} from './data.js';
export {
  FramingError,
  OvsdbError,
  type OvsdbErrorCode,
  RemoteSyntaxError,
  RpcError,
  TransactionError,
} from './errors.js';
export { DEFAULT_MAX_DEPTH, type FramerOptions, JsonObjectFramer } from './json-stream.js';
export { JsonRpcSession, type SessionOptions } from './jsonrpc.js';
export {
  connectRemote,
  DEFAULT_OVSDB_PORT,
  parseRemote,
  parseRemotes,
  type Remote,
  type TlsFiles,
} from './remote.js';
export {
  type ChangeKind,
  type ChangeListener,
  type MonitorSpec,
  type MonitorTable,
  Replica,
  type RowChange,
  type UpdateFormat,
} from './replica.js';
export {
  type AtomicType,
  type BaseType,
  type ColumnSchema,
  type ColumnType,
  type DatabaseSchema,
  isMap,
  isScalar,
  parseColumnType,
  parseSchema,
  type TableSchema,
} from './schema.js';
