/*
 * Liveness as neutron-server judges an OVN metadata agent (reference.md §15): this chassis' Chassis_Private
 * row (Chassis on a Southbound without that table) carries
 *   neutron:ovn-metadata-id      uuid5(chassis uuid, "metadata_agent"), the agent's id in `network agent
 *                                list`; the same value neutron's agent computes, so switching agents keeps it
 *   neutron:ovn-metadata-sb-cfg  a copy of SB_Global.nb_cfg, which neutron-server bumps; the agent is alive
 *                                while it lags nb_cfg by at most one
 * The id is added, never overwritten (neutron's db_add). The nb_cfg copy is written at once on the first
 * value and after each reconnection, and otherwise after a random delay of 0 to
 * min(max(agent_down_time/3, 3), 10) whole seconds, so a cloud's agents do not all write in the same
 * instant (neutron's SbGlobalUpdateEvent). Changes arriving during a delay are coalesced: the write takes
 * the latest value. Only our two keys are touched (mutate delete + insert), never the rest of the map that
 * ovn-controller owns. A write that cannot be made now (disconnected, the row not there yet) is made when
 * the connection or the row comes back.
 */
import { createHash } from 'node:crypto';
import { LogEvent, type Logger } from '@nmp/common';
import { METADATA_ID_KEY, METADATA_SB_CFG_KEY, type OvnSouthbound } from '@nmp/ovn';
import { livenessMaxDelaySeconds } from './options.js';

const RETRY_MS = 5000;

/** neutron.agent.ovn.metadata.agent.OVN_METADATA_UUID_NAMESPACE */
export const OVN_METADATA_UUID_NAMESPACE = 'd34bf9f6-da32-4871-9af8-15a4626b41ab';

const UUID_RE =
  /^(?:urn:uuid:)?\{?([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})\}?$/i;

function uuidBytes(text: string): Buffer | undefined {
  const m = UUID_RE.exec(text.trim());
  return m ? Buffer.from(m.slice(1).join(''), 'hex') : undefined;
}

function formatUuid(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** RFC 4122 version 5 (SHA-1) uuid, as Python's uuid.uuid5. */
export function uuid5(namespace: string, name: string): string {
  const ns = uuidBytes(namespace);
  if (!ns) throw new Error(`not a uuid: ${namespace}`);
  const hash = createHash('sha1').update(ns).update(name, 'utf8').digest().subarray(0, 16);
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  return formatUuid(hash);
}

/** The metadata agent id neutron's agent registers for a chassis name. */
export function metadataAgentId(chassisName: string): string {
  const b = uuidBytes(chassisName);
  const chassisId = b ? formatUuid(b) : uuid5(OVN_METADATA_UUID_NAMESPACE, chassisName);
  return uuid5(chassisId, 'metadata_agent');
}

export interface LivenessOptions {
  readonly southbound: OvnSouthbound;
  readonly agentDownTime: number;
  readonly transactionTimeoutMs: number;
  readonly logger: Logger;
  /** For tests: a random source in [0, 1) and a clock. */
  readonly random?: () => number;
}

export interface LivenessStats {
  readonly writes: number;
  readonly failures: number;
  /** The nb_cfg value last written (undefined: none yet). */
  readonly written: number | undefined;
}

export class MetadataLiveness {
  readonly agentId: string;
  readonly #o: LivenessOptions;
  readonly #sb: OvnSouthbound;
  readonly #random: () => number;
  #timer: NodeJS.Timeout | undefined;
  #first = true;
  #writing = false;
  #again = false;
  #closed = false;
  #stats = { writes: 0, failures: 0, written: undefined as number | undefined };
  #stop: (() => void) | undefined;

  constructor(options: LivenessOptions) {
    this.#o = options;
    this.#sb = options.southbound;
    this.#random = options.random ?? Math.random;
    this.agentId = metadataAgentId(options.southbound.chassisName);
  }

  get stats(): LivenessStats {
    return { ...this.#stats };
  }

  start(): void {
    const onConnected = () => {
      // After a reconnection nb_cfg may have moved on while we were away: catch up at once.
      this.#first = true;
      this.#changed();
    };
    this.#sb.client.on('connected', onConnected);
    const stopChanges = this.#sb.replica.onChange((changes) => {
      if (changes.some((c) => c.table === 'SB_Global' || c.table === 'Chassis_Private')) this.#changed();
    });
    this.#stop = () => {
      this.#sb.client.off('connected', onConnected);
      stopChanges();
    };
    if (this.#sb.connected) onConnected();
  }

  close(): void {
    this.#closed = true;
    this.#stop?.();
    if (this.#timer) clearTimeout(this.#timer);
  }

  /** Something relevant changed: write now (first time) or after neutron's random delay. */
  #changed(): void {
    if (this.#closed || !this.#sb.connected) return;
    if (this.#upToDate()) return;
    if (this.#first) {
      this.#first = false;
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = undefined;
      void this.#write();
      return;
    }
    if (this.#timer) return; // a delayed write is pending; it will take the latest value
    const max = livenessMaxDelaySeconds(this.#o.agentDownTime);
    const delay = Math.floor(this.#random() * (max + 1)) * 1000;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#write();
    }, delay);
    this.#timer.unref();
  }

  /** Our row already carries our id and the current nb_cfg. */
  #upToDate(): boolean {
    const row = this.#sb.chassisPrivate;
    if (!row) return false;
    const ext = row.external_ids as ReadonlyMap<string, string>;
    const nbCfg = this.#sb.nbCfg;
    return (
      ext.get(METADATA_ID_KEY) !== undefined &&
      (nbCfg === undefined || ext.get(METADATA_SB_CFG_KEY) === String(nbCfg))
    );
  }

  async #write(): Promise<void> {
    if (this.#writing) {
      this.#again = true;
      return;
    }
    this.#writing = true;
    try {
      do {
        this.#again = false;
        await this.#writeOnce();
      } while (this.#again && !this.#closed);
    } finally {
      this.#writing = false;
    }
  }

  async #writeOnce(): Promise<void> {
    const sb = this.#sb;
    if (this.#closed || !sb.connected) return;
    if (!sb.chassisPrivate) {
      // ovn-controller has not registered this chassis yet; the row's arrival triggers the write.
      return;
    }
    const table = sb.replica.has('Chassis_Private') ? 'Chassis_Private' : 'Chassis';
    const nbCfg = sb.nbCfg;
    const mutations: unknown[] = [['external_ids', 'insert', ['map', [[METADATA_ID_KEY, this.agentId]]]]];
    if (nbCfg !== undefined) {
      mutations.push(
        ['external_ids', 'delete', ['set', [METADATA_SB_CFG_KEY]]],
        ['external_ids', 'insert', ['map', [[METADATA_SB_CFG_KEY, String(nbCfg)]]]],
      );
    }
    try {
      const [result] = (await sb.client.transact(
        [{ op: 'mutate', table, where: [['name', '==', sb.chassisName]], mutations }],
        this.#o.transactionTimeoutMs,
      )) as { count?: number }[];
      if (result?.count === 0) return; // the row went away meanwhile; its return triggers a new write
      this.#stats.writes++;
      this.#stats.written = nbCfg;
      this.#o.logger.debug({ code: LogEvent.MDA_OVN_LIVENESS, nbCfg, table }, 'liveness written');
    } catch (err) {
      this.#stats.failures++;
      this.#o.logger.warn(
        { code: LogEvent.MDA_OVN_LIVENESS_FAILED, err: err instanceof Error ? err.message : String(err) },
        'cannot write the liveness keys to the Southbound; retrying',
      );
      this.#first = true;
      if (!this.#timer && !this.#closed) {
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.#changed();
        }, RETRY_MS);
        this.#timer.unref();
      }
    }
  }
}
