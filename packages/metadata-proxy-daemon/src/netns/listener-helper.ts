/*
 * Getting listening sockets out of a namespace (netns_exec = ip | nsenter): start helper.js inside it,
 * collect the server handles it sends, and make sure none leaks when anything goes wrong (bind error, helper
 * crash, timeout: every handle received so far is closed and the helper killed).
 */
import type { BindAddress } from '@nmp/common';
import { listenHost } from '@nmp/common';
import { HELPER_PATH } from '../helper-scripts.js';
import { runHelperProcess } from './helper-process.js';
import {
  HelperError,
  type HelperResult,
  type ReceivedListener,
  receivedListener,
  reportedNetns,
} from './listeners.js';
import { NETNS_DIR, type NetnsId } from './namespace-id.js';

export interface HelperOptions {
  readonly namespace: string;
  readonly binds: readonly BindAddress[];
  readonly backlog: number;
  readonly netnsExec: 'ip' | 'nsenter';
  readonly timeoutMs: number;
}

function enterCommand(how: 'ip' | 'nsenter', namespace: string): string[] {
  return how === 'ip'
    ? ['ip', 'netns', 'exec', namespace]
    : ['nsenter', `--net=${NETNS_DIR}/${namespace}`, '--'];
}

export async function runListenerHelper(o: HelperOptions): Promise<HelperResult> {
  const argv = [
    ...enterCommand(o.netnsExec, o.namespace),
    process.execPath,
    HELPER_PATH,
    JSON.stringify(o.binds.map((b) => ({ host: listenHost(b), port: b.port, backlog: o.backlog }))),
  ];
  const listeners: ReceivedListener[] = [];
  let netns: NetnsId | undefined;
  let failure: HelperError | undefined;
  const end = await runHelperProcess(argv, {
    timeoutMs: o.timeoutMs,
    onMessage: (m, handle) => {
      if (m.op === 'listener' && handle && typeof m.index === 'number' && o.binds[m.index]) {
        listeners.push(receivedListener(o.binds[m.index]!, m, handle));
      } else if (m.op === 'done' && m.netns) {
        netns = reportedNetns(m.netns);
      } else if (m.op === 'error') {
        const bind = typeof m.index === 'number' ? o.binds[m.index]?.spec : undefined;
        failure = new HelperError(
          `cannot listen on ${bind ?? '?'} in ${o.namespace}: ${m.code ?? ''} ${m.message ?? ''}`.trim(),
          m.code ?? 'EHELPER',
        );
      }
    },
  });
  const err =
    end.how === 'timeout'
      ? new HelperError(`listener helper in ${o.namespace} took longer than ${o.timeoutMs} ms`, 'ETIMEDOUT')
      : end.how === 'error'
        ? new HelperError(`cannot start the listener helper: ${end.error!.message}`, 'EHELPER')
        : failure;
  if (err || netns === undefined || listeners.length !== o.binds.length) {
    for (const l of listeners) l.handle.close();
    throw (
      err ??
      new HelperError(
        `listener helper in ${o.namespace} ended without handing over its sockets` +
          (end.said ? `: ${end.said}` : ''),
        /Cannot open network namespace|No such file/i.test(end.stderr) ? 'ENONS' : 'EHELPER',
      )
    );
  }
  return { listeners, netns };
}
