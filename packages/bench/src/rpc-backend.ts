// neutron-server's RPC side for the storms (boot-storm.ts --resolver rpc, region.ts): a throwaway
// RabbitMQ node and neutron's own RPC server code (python3-neutron's MetadataRpcCallback behind
// oslo.messaging, the lab's python server), `workers` processes consuming q-plugin side by side as
// neutron-server's rpc_workers do, each answering get_ports after `latencyMs`.
import { randomBytes } from 'node:crypto';
import {
  type NeutronRpcServer,
  neutronPythonSkipReason,
  type RabbitNode,
  rabbitSkipReason,
  startNeutronRpcServer,
  startRabbitNode,
} from '@nmp/testkit';

export interface NeutronRpcBackendOptions {
  /** The Neutron ports the servers answer get_ports from. */
  readonly ports: readonly unknown[];
  readonly latencyMs: number;
  /** neutron-server RPC worker processes (at least 1). */
  readonly workers: number;
  readonly log?: (message: string) => void;
}

export interface RpcCounts {
  /** get_ports calls, added up over the workers. */
  readonly calls: number;
  /** State reports received. */
  readonly reports: number;
  /** Most get_ports calls for one address. */
  readonly maxForOneAddress: number;
}

export interface NeutronRpcBackend {
  readonly rabbit: RabbitNode;
  /** transport_url of the bench user. */
  readonly url: string;
  readonly servers: readonly NeutronRpcServer[];
  reset(): Promise<void>;
  counts(): Promise<RpcCounts>;
  stop(): Promise<void>;
}

/** The servers' `per_address` answer: {address: count}. */
function perAddress(answer: Record<string, unknown>): [string, number][] {
  const per = answer.per_address;
  if (typeof per !== 'object' || per === null) return [];
  return Object.entries(per).map(([ip, c]): [string, number] => [ip, Number(c)]);
}

/** counts() adds up the workers' get_ports calls and their per-address counts. */
export async function startNeutronRpcBackend({
  ports,
  latencyMs,
  workers,
  log,
}: NeutronRpcBackendOptions): Promise<NeutronRpcBackend> {
  const reason = rabbitSkipReason() ?? neutronPythonSkipReason();
  if (reason) throw new Error(`needs RabbitMQ and python3-neutron: ${reason}`);
  const rabbit = await startRabbitNode(undefined);
  const servers: NeutronRpcServer[] = [];
  const stop = async () => {
    for (const s of servers) await s.stop();
    await rabbit.cleanup();
  };
  try {
    const password = randomBytes(12).toString('base64url');
    await rabbit.addUser('bench', password);
    const url = rabbit.url('bench', password);
    // They print no line per call (that costs their CPU); they count calls per address themselves.
    for (let i = 0; i < Math.max(1, workers || 1); i++) {
      const server = await startNeutronRpcServer(undefined, {
        transportUrl: url,
        ports,
        topics: i === 0 ? ['plugin', 'reports'] : ['plugin'],
        host: `neutron-server-${i}`,
      });
      servers.push(server);
      await server.setDelay(latencyMs);
      await server.command({ cmd: 'quiet', on: true });
    }
    log?.(
      `  RabbitMQ node ${rabbit.nodeName} on 127.0.0.1:${rabbit.port}; neutron RPC workers (python) ${servers.map((s) => s.pid).join(', ')}`,
    );
    return {
      rabbit,
      url,
      servers,
      async reset() {
        for (const s of servers) await s.command({ cmd: 'reset_stats' });
      },
      async counts() {
        const per = new Map<string, number>();
        let calls = 0;
        let reports = 0;
        for (const s of servers) {
          const stats = await s.command({ cmd: 'stats' });
          calls += Number(stats.get_ports_calls);
          reports += Number(stats.reports ?? 0);
          for (const [ip, c] of perAddress(await s.command({ cmd: 'per_address' })))
            per.set(ip, (per.get(ip) ?? 0) + c);
        }
        return { calls, reports, maxForOneAddress: Math.max(0, ...per.values()) };
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
