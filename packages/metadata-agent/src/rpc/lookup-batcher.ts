/*
 * Coalescing of uncached port lookups into fewer get_ports calls ([DEFAULT] rpc_lookup_batch_max).
 * neutron-server's get_ports takes lists: `fixed_ips: {ip_address: [ip1, ip2]}` (or `mac_address: [m1, m2]`,
 * or `device_id: [r1, r2]`) selects the ports having ANY of them (db_base_plugin_v2._get_ports_query:
 * `Port.fixed_ips.any(IPAllocation.ip_address.in_(ips))`, `mac_address.in_`, and every other list filter an
 * IN), so one call can answer several lookups that share the rest of the filter (the same network ids).
 *
 * Natural batching, no added latency when quiet: per lane (the filter without the addresses: kind and
 * network list, or router interfaces) the first lookup goes out at once; lookups arriving while a call of
 * the lane is in flight wait in the lane's open batch, which goes out as ONE call when a call of the lane
 * returns, or at once when it holds `max` items. Each waiter is answered from the call's ports by
 * `pick` (the same ports a call for that item alone would have returned, from a server that honours
 * the filters), keeps its own deadline (the call's is the latest of its waiters'; a waiter whose deadline
 * comes first gets the timeout a call of its own would have had), and gets the call's failure as a call
 * of its own would (same code). An item asked twice in one batch is sent once.
 */
import { MetadataError, type NeutronPort } from '@nmp/common';

export interface BatchLane<I> {
  /** What kind of lookup (the metric's label): 'address' or 'router'. */
  readonly name: string;
  /** The call for these items (never empty, no duplicates), ending by `deadline` at the latest. */
  readonly send: (items: readonly I[], deadline: number) => Promise<NeutronPort[]>;
  /** The ports of a call's answer that belong to `item`. */
  readonly pick: (ports: readonly NeutronPort[], item: I) => NeutronPort[];
}

export interface LookupBatcherOptions {
  /** Most items in one call (>= 1). */
  readonly max: number;
  /** The error of a call whose deadline passed (what the RPC client says at that moment). */
  readonly expired: (ms: number) => MetadataError;
  /** Told the size of each call (metrics). */
  readonly sent?: (lane: string, size: number) => void;
}

interface Waiter<I> {
  readonly item: I;
  readonly deadline: number;
  readonly started: number;
  readonly resolve: (ports: NeutronPort[]) => void;
  readonly reject: (err: unknown) => void;
  timer: NodeJS.Timeout | undefined;
  done: boolean;
}

interface Lane<I> {
  inFlight: number;
  open: Waiter<I>[];
}

export interface LookupBatcherStats {
  /** Calls sent. */
  readonly calls: number;
  /** Items (addresses, routers) those calls carried. */
  readonly items: number;
  /** Lookups that waited for a batch (did not go out at once). */
  readonly waited: number;
}

export class LookupBatcher<I extends string> {
  readonly #o: LookupBatcherOptions;
  readonly #lanes = new Map<string, Lane<I>>();
  #calls = 0;
  #items = 0;
  #waited = 0;

  constructor(options: LookupBatcherOptions) {
    this.#o = { ...options, max: Math.max(1, Math.floor(options.max)) };
  }

  get stats(): LookupBatcherStats {
    return { calls: this.#calls, items: this.#items, waited: this.#waited };
  }

  /** The ports of `item` in lane `key`, from a call of its own or a batch. */
  lookup(key: string, lane: BatchLane<I>, item: I, deadline: number): Promise<NeutronPort[]> {
    let l = this.#lanes.get(key);
    if (l === undefined) {
      l = { inFlight: 0, open: [] };
      this.#lanes.set(key, l);
    }
    const current = l;
    return new Promise<NeutronPort[]>((resolve, reject) => {
      const w: Waiter<I> = {
        item,
        deadline,
        started: Date.now(),
        resolve,
        reject,
        timer: undefined,
        done: false,
      };
      if (current.inFlight === 0 || this.#o.max === 1) {
        this.#send(key, current, lane, [w]);
        return;
      }
      this.#waited++;
      current.open.push(w);
      // Waiting for a batch: its deadline is its own, whenever the batch goes.
      this.#arm(w, current);
      if (current.open.length >= this.#o.max) this.#flush(key, current, lane);
    });
  }

  /** A timer for the waiter's own deadline (it may come before the call's). */
  #arm(w: Waiter<I>, lane: Lane<I>): void {
    const ms = w.deadline - Date.now();
    w.timer = setTimeout(
      () => {
        w.timer = undefined;
        if (w.done) return;
        const at = lane.open.indexOf(w);
        if (at >= 0) lane.open.splice(at, 1);
        this.#settle(w, undefined, this.#o.expired(Date.now() - w.started));
      },
      Math.max(0, ms),
    );
  }

  #flush(key: string, lane: Lane<I>, batch: BatchLane<I>): void {
    if (lane.open.length === 0) return;
    const waiters = lane.open.splice(0, this.#o.max);
    this.#send(key, lane, batch, waiters);
  }

  #send(key: string, lane: Lane<I>, batch: BatchLane<I>, waiters: Waiter<I>[]): void {
    const items = [...new Set(waiters.map((w) => w.item))];
    let deadline = 0;
    for (const w of waiters) deadline = Math.max(deadline, w.deadline);
    this.#calls++;
    this.#items += items.length;
    this.#o.sent?.(batch.name, items.length);
    lane.inFlight++;
    let call: Promise<NeutronPort[]>;
    try {
      call = batch.send(items, deadline);
    } catch (err) {
      call = Promise.reject(err);
    }
    call.then(
      (ports) => {
        for (const w of waiters) this.#settle(w, batch.pick(ports, w.item), undefined);
        this.#landed(key, lane, batch);
      },
      (err: unknown) => {
        for (const w of waiters) this.#settle(w, undefined, err, items.length);
        this.#landed(key, lane, batch);
      },
    );
  }

  #landed(key: string, lane: Lane<I>, batch: BatchLane<I>): void {
    lane.inFlight--;
    if (lane.open.length > 0) this.#flush(key, lane, batch);
    else if (lane.inFlight === 0 && this.#lanes.get(key) === lane) this.#lanes.delete(key);
  }

  /** Answer one waiter once; a batch's failure is each waiter's own copy (with the batch's size when > 1). */
  #settle(w: Waiter<I>, ports: NeutronPort[] | undefined, err: unknown, size = 1): void {
    if (w.done) return;
    w.done = true;
    if (w.timer !== undefined) clearTimeout(w.timer);
    if (ports !== undefined) w.resolve(ports);
    else if (err instanceof MetadataError)
      w.reject(new MetadataError(err.code, { ...err.details, ...(size > 1 ? { batch: size } : {}) }));
    else w.reject(err);
  }
}
