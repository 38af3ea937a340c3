/* One HTTP request over a UNIX socket (an admin socket), as `curl --unix-socket` would make it. */
import { request } from 'node:http';

export interface UnixHttpAnswer {
  readonly status: number;
  /** Content-Type of the answer. */
  readonly type: string;
  readonly body: string;
  /** The Allow header (a 405's), only when the answer has one. */
  readonly allow?: string;
}

export function unixHttpGet(socketPath: string, path: string, method = 'GET'): Promise<UnixHttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          type: String(res.headers['content-type']),
          body,
          ...(res.headers.allow ? { allow: String(res.headers.allow) } : {}),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
