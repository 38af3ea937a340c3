/*
 * From a request target to the document key Nova's lookup would use (reference.md §7.2):
 * the WSGI PATH_INFO (query dropped, percent-decoded), normalised like Python's posixpath.normpath,
 * then routed: a first segment other than `openstack` or `ec2` is EC2 (`/latest/...` == `/ec2/latest/...`).
 */

/** PATH_INFO of a request target: the path without the query, percent-decoded as a WSGI server does. */
export function pathInfo(target: string): string {
  let path = target;
  if (path.charCodeAt(0) !== 47 /* / */) {
    // Absolute-form (`http://host/path`) or something odd: take the path part if there is one.
    try {
      path = new URL(path).pathname;
    } catch {
      path = `/${path}`;
    }
  }
  const q = path.indexOf('?');
  if (q !== -1) path = path.slice(0, q);
  if (path.indexOf('%') !== -1) {
    try {
      path = decodeURIComponent(path);
    } catch {
      // Not valid UTF-8 once decoded: keep the raw text, which simply matches nothing.
    }
  }
  return path;
}

/**
 * Python's posixpath.normpath, exactly: `.` and empty segments dropped, `..` resolved (never above the
 * root), a trailing slash removed, and POSIX's special case kept: exactly two leading slashes survive.
 */
export function normpath(path: string): string {
  if (path === '') return '.';
  let initialSlashes = path.startsWith('/') ? 1 : 0;
  if (initialSlashes && path.startsWith('//') && !path.startsWith('///')) initialSlashes = 2;
  const out: string[] = [];
  for (const comp of path.split('/')) {
    if (comp === '' || comp === '.') continue;
    if (
      comp !== '..' ||
      (!initialSlashes && out.length === 0) ||
      (out.length > 0 && out[out.length - 1] === '..')
    )
      out.push(comp);
    else if (out.length > 0) out.pop();
  }
  const joined = out.join('/');
  const result = initialSlashes ? '/'.repeat(initialSlashes) + joined : joined;
  return result === '' ? '.' : result;
}

/** Cheap check for the common case: already normal (no `//`, `.` or `..` segments, no trailing slash). */
function isNormal(path: string): boolean {
  if (path.length > 1 && path.charCodeAt(path.length - 1) === 47) return false;
  if (path.indexOf('//') !== -1) return false;
  return path.indexOf('/.') === -1;
}

/** Normalised path of a request target (what Nova compares with `/` and then looks up). */
export function normalisedPath(target: string): string {
  const info = pathInfo(target);
  return isNormal(info) ? info : normpath(info);
}

/**
 * The document key for a normalised path: the path tokens Nova's lookup ends up with, joined by `/`,
 * e.g. `ec2/latest/meta-data/hostname` or `openstack/latest/meta_data.json`; a bare `ec2` or `openstack`
 * asks for that tree's version list.
 */
export function documentKey(normalised: string): string {
  if (normalised.startsWith('/openstack/') || normalised.startsWith('/ec2/')) return normalised.slice(1);
  if (normalised === '/openstack' || normalised === '/ec2') return normalised.slice(1);
  // `//x` keeps its two slashes through normpath; the empty first token makes Nova answer the EC2 list.
  if (normalised.startsWith('//') || normalised === '/') return 'ec2';
  return `ec2${normalised}`;
}
