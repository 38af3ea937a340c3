// The bare agent of `npm run bench -- --compare-bare` (issue 22): what a Node developer writes in ten lines
// to answer a bare proxy on a UNIX socket: the port from an in-memory inventory by (network, last
// X-Forwarded-For address), the signature Nova checks, the request forwarded over an undici Pool and the
// answer piped back. None of metadata-agent's checks, caches, logging or metrics. Benchmark code only.
// argv: socketPath inventoryFile novaUrl; the shared secret comes in NMP_METADATA_PROXY_SHARED_SECRET.
import { createHmac } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Dispatcher } from 'undici';
import { Pool } from 'undici';

interface Port {
  network_id: string;
  device_id: string;
  project_id: string;
  fixed_ips: { ip_address: string }[];
}

const [socketPath = '', inventoryFile = '', novaUrl = ''] = process.argv.slice(2);
const secret = process.env.NMP_METADATA_PROXY_SHARED_SECRET as string;
const ports = new Map<string, Port>();
for (const p of (JSON.parse(readFileSync(inventoryFile, 'utf8')) as { ports: Port[] }).ports)
  for (const ip of p.fixed_ips) ports.set(`${p.network_id} ${ip.ip_address}`, p);
const nova = new Pool(novaUrl, { connections: 64 });
rmSync(socketPath, { force: true });
createServer((req, res) => {
  const ip = String(req.headers['x-forwarded-for']).split(',').pop()!.trim();
  const port = ports.get(`${req.headers['x-neutron-network-id']} ${ip}`);
  if (port === undefined) return res.writeHead(404).end();
  const headers = {
    'x-forwarded-for': ip,
    'x-instance-id': port.device_id,
    'x-tenant-id': port.project_id,
    'x-instance-id-signature': createHmac('sha256', secret).update(port.device_id).digest('hex'),
  };
  nova.request({ method: req.method as Dispatcher.HttpMethod, path: req.url ?? '/', headers }).then(
    (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.body.pipe(res);
    },
    () => {
      res.writeHead(503).end();
    },
  );
}).listen(socketPath);
process.once('SIGTERM', () => process.exit(0));
