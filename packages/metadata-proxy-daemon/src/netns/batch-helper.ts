/*
 * netns_exec = python: listeners for many namespaces from ONE short-lived helper. Node cannot change its
 * network namespace, so one Node helper per namespace is the floor of the other modes (~50 ms of CPU
 * each, start-up alone). Python can: it enters each namespace of the batch with setns(2), creates the
 * listening sockets there, returns, and then exec's batch-relay.js, a Node program that inherits those
 * descriptors and the daemon's IPC channel and hands the sockets over as helper.js does. Every network
 * node that runs neutron has python3; the default stays the Node-only helper.
 *
 * The Python part never keeps a namespace it could not leave: failing to return to its own namespace
 * ends it at once (exit 3) without exec'ing anything.
 */
import { type BindAddress, listenHost } from '@nmp/common';
import { RELAY_PATH } from '../helper-scripts.js';
import { runHelperProcess } from './helper-process.js';
import {
  HelperError,
  type HelperResult,
  type ReceivedListener,
  receivedListener,
  reportedNetns,
} from './listeners.js';

export const PYTHON_HELPER = `
import ctypes, errno, json, os, socket, sys
CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)
spec = json.loads(sys.argv[1])
home = os.open('/proc/self/ns/net', os.O_RDONLY)
def enter(fd):
    if libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
def back():
    if libc.setns(home, CLONE_NEWNET) != 0:
        sys.stderr.write('cannot return to the original network namespace\\n')
        os._exit(3)
out = []
for item in spec['items']:
    socks = []
    try:
        try:
            nsfd = os.open('/run/netns/' + item['namespace'], os.O_RDONLY)
        except FileNotFoundError:
            out.append({'key': item['key'], 'error': {'code': 'ENONS', 'message': 'namespace %s does not exist' % item['namespace']}})
            continue
        try:
            st = os.fstat(nsfd)
            enter(nsfd)
            try:
                for b in item['binds']:
                    host, zone = (b['host'].split('%', 1) + [None])[:2]
                    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
                    s = socket.socket(fam, socket.SOCK_STREAM)
                    socks.append(s)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if fam == socket.AF_INET6:
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                        s.bind((host, b['port'], 0, socket.if_nametoindex(zone) if zone else 0))
                    else:
                        s.bind((host, b['port']))
                    s.listen(b['backlog'])
            finally:
                back()
        finally:
            os.close(nsfd)
        for s in socks:
            s.set_inheritable(True)
        out.append({'key': item['key'], 'netns': {'dev': st.st_dev, 'ino': st.st_ino}, 'fds': [s.detach() for s in socks]})
    except OSError as e:
        for s in socks:
            s.close()
        code = errno.errorcode.get(e.errno, 'EHELPER') if e.errno else 'EHELPER'
        out.append({'key': item['key'], 'error': {'code': code, 'message': 'cannot listen on %s: %s' % (', '.join(b['spec'] for b in item['binds']), e)}})
os.close(home)
os.execv(spec['node'], [spec['node'], spec['relay'], json.dumps({'items': out})])
`;

export interface BatchItem {
  readonly namespace: string;
  readonly binds: readonly BindAddress[];
}

export interface BatchOptions {
  readonly backlog: number;
  readonly timeoutMs: number;
  readonly python?: string;
}

/** One helper run for several namespaces: a result or an error per namespace. */
export async function runBatchHelper(
  items: readonly BatchItem[],
  o: BatchOptions,
): Promise<Map<string, HelperResult | HelperError>> {
  const python = o.python ?? '/usr/bin/python3';
  const spec = {
    node: process.execPath,
    relay: RELAY_PATH,
    items: items.map((it) => ({
      key: it.namespace,
      namespace: it.namespace,
      binds: it.binds.map((b) => ({ host: listenHost(b), port: b.port, backlog: o.backlog, spec: b.spec })),
    })),
  };
  const byKey = new Map(items.map((it) => [it.namespace, it]));
  const received = new Map<string, ReceivedListener[]>();
  const out = new Map<string, HelperResult | HelperError>();
  const fail = (key: string, err: HelperError) => {
    for (const l of received.get(key) ?? []) l.handle.close();
    received.delete(key);
    out.set(key, err);
  };
  const end = await runHelperProcess([python, '-c', PYTHON_HELPER, JSON.stringify(spec)], {
    timeoutMs: o.timeoutMs,
    onMessage: (m, handle) => {
      const item = m.key !== undefined ? byKey.get(m.key) : undefined;
      if (m.op === 'listener') {
        const bind = item && typeof m.index === 'number' ? item.binds[m.index] : undefined;
        if (!handle) return;
        if (!bind || out.has(m.key!)) {
          handle.close();
          return;
        }
        const list = received.get(m.key!) ?? [];
        list.push(receivedListener(bind, m, handle));
        received.set(m.key!, list);
      } else if (m.op === 'item' && item && m.netns) {
        const listeners = received.get(item.namespace) ?? [];
        received.delete(item.namespace);
        if (listeners.length !== item.binds.length) {
          for (const l of listeners) l.handle.close();
          out.set(
            item.namespace,
            new HelperError(`batch helper lost sockets of ${item.namespace}`, 'EHELPER'),
          );
        } else out.set(item.namespace, { listeners, netns: reportedNetns(m.netns) });
      } else if (m.op === 'item-error' && item) {
        const text = m.message ?? '';
        fail(
          item.namespace,
          new HelperError(
            m.code === 'ENONS'
              ? text
              : `${text.replace(/^cannot listen on /, `cannot listen in ${item.namespace} on `)}`,
            m.code ?? 'EHELPER',
          ),
        );
      }
    },
  });
  const why =
    end.how === 'timeout'
      ? new HelperError(`batch helper took longer than ${o.timeoutMs} ms`, 'ETIMEDOUT')
      : end.how === 'error'
        ? new HelperError(`cannot start the batch helper (${python}): ${end.error!.message}`, 'EHELPER')
        : undefined;
  for (const it of items) {
    if (out.has(it.namespace)) continue;
    fail(
      it.namespace,
      why ??
        new HelperError(
          `batch helper ended before ${it.namespace} was done` + (end.said ? `: ${end.said}` : ''),
          'EHELPER',
        ),
    );
  }
  return out;
}

/**
 * Turns attach requests into helper runs: at most `parallel` runs at once, and each run takes every
 * namespace that queued up meanwhile (up to `max`). A lone request starts at once; a storm (a restart, a
 * burst of adds) is served in a handful of batches instead of a process per namespace.
 */
export class BatchOpener {
  #queue: { item: BatchItem; resolve: (r: HelperResult) => void; reject: (e: unknown) => void }[] = [];
  #running = 0;
  #scheduled = false;

  constructor(
    private readonly run: (items: readonly BatchItem[]) => Promise<Map<string, HelperResult | HelperError>>,
    private readonly parallel = 2,
    private readonly max = 64,
  ) {}

  open(item: BatchItem): Promise<HelperResult> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      this.#schedule();
    });
  }

  /** Next turn of the event loop: requests of the same turn share a batch. */
  #schedule(): void {
    if (this.#scheduled || this.#running >= this.parallel || this.#queue.length === 0) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    if (this.#running >= this.parallel || this.#queue.length === 0) return;
    const batch = this.#queue.splice(0, this.max);
    this.#running++;
    this.run(batch.map((b) => b.item))
      .then(
        (results) => {
          for (const b of batch) {
            const r = results.get(b.item.namespace);
            if (r === undefined) b.reject(new HelperError(`no result for ${b.item.namespace}`, 'EHELPER'));
            else if (r instanceof HelperError) b.reject(r);
            else b.resolve(r);
          }
        },
        (err: unknown) => {
          for (const b of batch) b.reject(err);
        },
      )
      .finally(() => {
        this.#running--;
        this.#schedule();
      });
    this.#schedule();
  }
}
