// The bare proxy of `npm run bench -- --compare-bare` (issue 22): what a Node developer writes in five lines
// to put an instance-metadata proxy in front of an agent's UNIX socket, with none of ns-metadata-proxy's
// policing (no header policy, limits, timers, logging or metrics). Benchmark code, never deployed.
// argv: port socketPath networkId
import { createServer } from 'node:http';
import type { Dispatcher } from 'undici';
import { Pool } from 'undici';

const [port, socketPath, networkId] = process.argv.slice(2);
const agent = new Pool('http://localhost', { socketPath, connections: 128 });
createServer((req, res) => {
  const headers = {
    ...req.headers,
    'x-forwarded-for': req.socket.remoteAddress,
    'x-neutron-network-id': networkId,
  };
  agent.request({ method: req.method as Dispatcher.HttpMethod, path: req.url ?? '/', headers }).then(
    (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.body.pipe(res);
    },
    () => {
      res.writeHead(502).end();
    },
  );
}).listen(Number(port), '127.0.0.1');
process.once('SIGTERM', () => process.exit(0));
