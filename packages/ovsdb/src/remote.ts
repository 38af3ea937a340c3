/*
 * OVSDB remotes as OVS and neutron write them: `tcp:HOST:PORT`, `ssl:HOST:PORT`, `unix:PATH`, IPv6 hosts in
 * brackets (`tcp:[fd00::1]:6642`), the port defaulting to 6640; several remotes comma-separated name the
 * members of one clustered database (`[ovn] ovn_sb_connection = tcp:10.0.0.1:6642,tcp:10.0.0.2:6642`).
 * Passive remotes (`ptcp:`, `pssl:`, `punix:`) are for servers and refused here.
 *
 * TLS follows OVS: the server's certificate must chain to the configured CA, and its name is not compared
 * with the host (OVS certificates from ovs-pki name a role and a uuid, not a host). The client presents its
 * own certificate when one is configured, as ovsdb-server asks for one. The PEM files are read at every
 * connection attempt, so renewed certificates are used without a restart; errors name the file, never its
 * contents.
 */
import { readFile } from 'node:fs/promises';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { OvsdbError, RemoteSyntaxError } from './errors.js';

export const DEFAULT_OVSDB_PORT = 6640;

export type Remote =
  | { readonly kind: 'tcp' | 'ssl'; readonly host: string; readonly port: number; readonly text: string }
  | { readonly kind: 'unix'; readonly path: string; readonly text: string };

/** PEM files for ssl: remotes (neutron's ovn_sb_private_key / ovn_sb_certificate / ovn_sb_ca_cert). */
export interface TlsFiles {
  readonly privateKey?: string;
  readonly certificate?: string;
  readonly caCert?: string;
}

/** Parse one remote. Throws RemoteSyntaxError. */
export function parseRemote(text: string): Remote {
  const t = text.trim();
  const colon = t.indexOf(':');
  if (colon === -1) throw new RemoteSyntaxError(`remote '${t}': expected tcp:, ssl: or unix:`);
  const kind = t.slice(0, colon).toLowerCase();
  const rest = t.slice(colon + 1);
  if (kind === 'unix') {
    if (rest === '' || rest.includes('\0')) throw new RemoteSyntaxError(`remote '${t}': missing socket path`);
    return { kind: 'unix', path: rest, text: t };
  }
  if (kind === 'ptcp' || kind === 'pssl' || kind === 'punix')
    throw new RemoteSyntaxError(
      `remote '${t}': ${kind}: is a listening (server) remote; use ${kind.slice(1)}:`,
    );
  if (kind !== 'tcp' && kind !== 'ssl')
    throw new RemoteSyntaxError(`remote '${t}': unknown method '${kind}:' (expected tcp:, ssl: or unix:)`);
  let host: string;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close === -1) throw new RemoteSyntaxError(`remote '${t}': unterminated '[' in IPv6 address`);
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== '' && !after.startsWith(':'))
      throw new RemoteSyntaxError(`remote '${t}': unexpected text after ']'`);
    portText = after === '' ? undefined : after.slice(1);
    if (isIP(host) !== 6) throw new RemoteSyntaxError(`remote '${t}': '${host}' is not an IPv6 address`);
  } else {
    const parts = rest.split(':');
    if (parts.length > 2)
      throw new RemoteSyntaxError(`remote '${t}': IPv6 addresses must be in brackets, e.g. tcp:[::1]:6642`);
    host = parts[0]!;
    portText = parts[1];
    if (!/^[A-Za-z0-9.-]{1,253}$/.test(host))
      throw new RemoteSyntaxError(`remote '${t}': '${host}' is not a host name or IPv4 address`);
  }
  let port = DEFAULT_OVSDB_PORT;
  if (portText !== undefined && portText !== '') {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535)
      throw new RemoteSyntaxError(`remote '${t}': '${portText}' is not a port number`);
    port = Number(portText);
  }
  return { kind, host, port, text: t };
}

/** Parse a comma-separated list of remotes (members of one clustered database). */
export function parseRemotes(text: string): Remote[] {
  const parts = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (parts.length === 0) throw new RemoteSyntaxError('no remote given');
  return parts.map(parseRemote);
}

export interface ConnectOptions {
  readonly tls?: TlsFiles;
  /** Connection (and TLS handshake) time limit. */
  readonly timeoutMs: number;
}

/** Open a stream to the remote; resolves once connected (TLS: once the server's certificate verified). */
export async function connectRemote(remote: Remote, options: ConnectOptions): Promise<Socket> {
  if (remote.kind === 'unix') return await opened(netConnect({ path: remote.path }), 'connect', options);
  if (remote.kind === 'tcp')
    return await opened(netConnect({ host: remote.host, port: remote.port }), 'connect', options);
  const pem = await readTlsFiles(options.tls ?? {});
  const socket = tlsConnect({
    host: remote.host,
    port: remote.port,
    ca: pem.ca,
    ...(pem.key ? { key: pem.key, cert: pem.cert } : {}),
    // OVS verifies the chain only (see the top of this file); SNI only for names.
    checkServerIdentity: () => undefined,
    ...(isIP(remote.host) === 0 ? { servername: remote.host } : {}),
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
  });
  return await opened(socket, 'secureConnect', options);
}

function opened(
  socket: Socket,
  event: 'connect' | 'secureConnect',
  options: ConnectOptions,
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new OvsdbError('OVSDB_ERR_TIMEOUT', `no connection within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once('error', fail);
    socket.once(event, () => {
      clearTimeout(timer);
      socket.off('error', fail);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

async function readTlsFiles(files: TlsFiles): Promise<{ key?: Buffer; cert?: Buffer; ca: Buffer }> {
  if (!files.caCert)
    throw new OvsdbError(
      'OVSDB_ERR_TLS_FILES',
      'ssl: remote without a CA certificate (ovn_sb_ca_cert): the server cannot be verified',
    );
  if (Boolean(files.privateKey) !== Boolean(files.certificate))
    throw new OvsdbError(
      'OVSDB_ERR_TLS_FILES',
      'ssl: the private key and the certificate (ovn_sb_private_key, ovn_sb_certificate) go together',
    );
  const read = async (what: string, path: string) => {
    try {
      return await readFile(path);
    } catch (err) {
      throw new OvsdbError(
        'OVSDB_ERR_TLS_FILES',
        `cannot read the ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
  };
  const ca = await read('CA certificate', files.caCert);
  if (!files.privateKey) return { ca };
  return {
    ca,
    key: await read('private key', files.privateKey),
    cert: await read('certificate', files.certificate!),
  };
}
