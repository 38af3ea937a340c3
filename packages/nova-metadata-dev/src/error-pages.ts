/*
 * Nova's error bodies are webob's generic exception pages (reference.md §3.6, §7.1), chosen by the
 * request's Accept header the way webob negotiates them: HTML when text/html is acceptable (so for the
 * wildcard Accept that every agent sends), JSON when only application/json is, plain text otherwise
 * (including no Accept header at all). The bytes match webob's templates exactly, e.g. the 154-byte
 * `403 Forbidden` page and its 52-byte plain twin (§12.3 item 11).
 */
import { pythonJsonDumps } from './python-json.js';

export type ErrorVariant = 'html' | 'json' | 'plain';

export const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  500: 'Internal Server Error',
};

/** webob's default explanation of each status (used when Nova raises the exception without one). */
export const DEFAULT_EXPLANATIONS: Readonly<Record<number, string>> = {
  400: 'The server could not comply with the request since it is either malformed or otherwise incorrect.',
  403: 'Access was denied to this resource.',
  404: 'The resource could not be found.',
  409: 'There was a conflict when trying to complete your request.',
  500: 'The server has either erred or is incapable of performing the requested operation.',
};

const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const QUOTED = '"(?:[^"\\\\]|\\\\.)*"';
const MEDIA_RANGE = new RegExp(
  `^(${TOKEN})/(${TOKEN})((?:[ \\t]*;[ \\t]*${TOKEN}=(?:${TOKEN}|${QUOTED}))*)$`,
);
const PARAM = new RegExp(`;[ \\t]*(${TOKEN})=(${TOKEN}|${QUOTED})`, 'g');
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

interface Range {
  readonly type: string;
  readonly subtype: string;
  readonly q: number;
  readonly hasParams: boolean;
}

/** Parse an Accept value as webob does; undefined when it is not a valid header (webob then accepts all). */
function parseAccept(value: string): Range[] | undefined {
  const ranges: Range[] = [];
  for (const part of value.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const m = MEDIA_RANGE.exec(item);
    if (!m) return undefined;
    let q = 1;
    let hasParams = false;
    let afterQ = false;
    for (const p of m[3]!.matchAll(PARAM)) {
      if (afterQ) continue; // accept-extensions after q do not matter
      if (p[1]!.toLowerCase() === 'q') {
        if (!QVALUE.test(p[2]!)) return undefined;
        q = Number(p[2]);
        afterQ = true;
      } else {
        hasParams = true;
      }
    }
    ranges.push({ type: m[1]!.toLowerCase(), subtype: m[2]!.toLowerCase(), q, hasParams });
  }
  return ranges;
}

const OFFERS: ReadonlyArray<readonly [string, string, ErrorVariant]> = [
  ['text', 'html', 'html'],
  ['application', 'json', 'json'],
];

/** Which page webob renders for this Accept header (`undefined` = header absent). */
export function negotiateErrorVariant(accept: string | undefined): ErrorVariant {
  if (accept === undefined) return 'plain';
  const ranges = parseAccept(accept);
  if (ranges === undefined) return 'html'; // an invalid header accepts every offer; the first wins
  let best: ErrorVariant = 'plain';
  let bestQ = 0;
  for (const [type, subtype, variant] of OFFERS) {
    // The most specific matching range decides the offer's quality; the first of equals wins.
    let specificity = 0;
    let q = 0;
    for (const r of ranges) {
      let s: number;
      if (r.type === type && r.subtype === subtype) {
        if (r.hasParams) continue; // our offers carry no parameters
        s = 3;
      } else if (r.type === type && r.subtype === '*') s = 2;
      else if (r.type === '*' && r.subtype === '*') s = 1;
      else continue;
      if (s <= specificity) continue;
      specificity = s;
      q = r.q;
    }
    if (q > bestQ) {
      best = variant;
      bestQ = q;
    }
  }
  return best;
}

function htmlEscape(s: string): string {
  let out = s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#x27;');
  // webob encodes the escaped text as ASCII with XML character references.
  out = out.replace(/[^\x00-\x7f]/gu, (ch) => `&#${ch.codePointAt(0)};`);
  return out;
}

/** webob's strip_tags, used for the plain-text page. */
function stripTags(s: string): string {
  return s
    .replace(/\n/g, ' ')
    .replace(/\r/g, '')
    .replace(/<br.*?>/gis, '\n')
    .replace(/<!--|-->/g, '')
    .replace(/<.*?>/gs, '');
}

export interface ErrorPage {
  readonly contentType: string;
  readonly body: Buffer;
}

/** The page webob renders for `status` with Nova's explanation (or webob's default one). */
export function renderErrorPage(
  status: number,
  explanation: string | undefined,
  variant: ErrorVariant,
): ErrorPage {
  const title = TITLES[status] ?? 'Error';
  const statusLine = `${status} ${title}`;
  const text = explanation ?? DEFAULT_EXPLANATIONS[status] ?? '';
  // webob's body template: explanation, two <br />, then the (empty) detail and comment lines.
  const bodyOf = (escaped: string) => `${escaped}<br /><br />\n\n\n`;
  switch (variant) {
    case 'html': {
      const page = `<html>\n <head>\n  <title>${statusLine}</title>\n </head>\n <body>\n  <h1>${statusLine}</h1>\n  ${bodyOf(htmlEscape(text))}\n </body>\n</html>`;
      return { contentType: 'text/html; charset=UTF-8', body: Buffer.from(page, 'utf8') };
    }
    case 'json': {
      const page = pythonJsonDumps({ message: bodyOf(text), code: statusLine, title });
      return { contentType: 'application/json', body: Buffer.from(page, 'utf8') };
    }
    default: {
      const page = `${statusLine}\n\n${stripTags(bodyOf(text))}`;
      return { contentType: 'text/plain; charset=UTF-8', body: Buffer.from(page, 'utf8') };
    }
  }
}
