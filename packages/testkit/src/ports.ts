/*
 * Fixed ports for servers that cannot take port 0 (RabbitMQ's AMQP and Erlang distribution ports, an
 * ovsdb-server restarted on the same port). They are probed free below the ephemeral range: 32768-60999
 * is crowded with the suite's own client connections, so a port there may be taken although nothing
 * listens on it.
 */
import { createServer } from 'node:net';

/** A loopback TCP port in [lo, hi) that could be bound just now. */
export async function freeLowPort(lo = 20_000, hi = 32_000): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = lo + Math.floor(Math.random() * (hi - lo));
    if (await canBind(port)) return port;
  }
  throw new Error(`no free TCP port found in [${lo}, ${hi})`);
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
}
