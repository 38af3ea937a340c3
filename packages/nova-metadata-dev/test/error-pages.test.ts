/* webob's error pages byte for byte (reference.md §3.6, §7.1, §12.3 items 7, 8, 11) and its negotiation. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { negotiateErrorVariant, renderErrorPage } from '../src/error-pages.js';
import { NOT_FOUND_HTML } from './helpers.js';

const FORBIDDEN_HTML =
  '<html>\n <head>\n  <title>403 Forbidden</title>\n </head>\n <body>\n  <h1>403 Forbidden</h1>\n  Invalid proxy request signature.<br /><br />\n\n\n\n </body>\n</html>';
const FORBIDDEN_PLAIN = '403 Forbidden\n\nInvalid proxy request signature.\n\n   ';

test('403 HTML page is the exact 154 bytes Nova sends', () => {
  const page = renderErrorPage(403, 'Invalid proxy request signature.', 'html');
  assert.equal(page.contentType, 'text/html; charset=UTF-8');
  assert.equal(page.body.toString('utf8'), FORBIDDEN_HTML);
  assert.equal(page.body.length, 154);
});

test('403 plain page is the exact 52 bytes', () => {
  const page = renderErrorPage(403, 'Invalid proxy request signature.', 'plain');
  assert.equal(page.contentType, 'text/plain; charset=UTF-8');
  assert.equal(page.body.toString('utf8'), FORBIDDEN_PLAIN);
  assert.equal(page.body.length, 52);
});

test('generic 404 is 154 bytes, its plain variant as in §3.6', () => {
  const html = renderErrorPage(404, undefined, 'html');
  assert.equal(html.body.toString(), NOT_FOUND_HTML);
  assert.equal(html.body.length, 154);
  assert.equal(
    renderErrorPage(404, undefined, 'plain').body.toString(),
    '404 Not Found\n\nThe resource could not be found.\n\n   ',
  );
});

test('500 unknown-error page is 207 bytes (§12.3 item 8)', () => {
  const page = renderErrorPage(500, 'An unknown error has occurred. Please try your request again.', 'html');
  assert.equal(page.body.length, 207);
});

test('JSON variant keeps webob quirks (<br /> in the message)', () => {
  const page = renderErrorPage(404, undefined, 'json');
  assert.equal(page.contentType, 'application/json');
  assert.deepEqual(JSON.parse(page.body.toString()), {
    message: 'The resource could not be found.<br /><br />\n\n\n',
    code: '404 Not Found',
    title: 'Not Found',
  });
});

test('explanations are HTML-escaped in the HTML page only', () => {
  assert.match(
    renderErrorPage(400, 'a <b> & "c"', 'html').body.toString(),
    /a &lt;b&gt; &amp; &quot;c&quot;/,
  );
  assert.match(renderErrorPage(400, 'a <b>', 'plain').body.toString(), /\n\na \n\n {3}$/);
});

test('Accept negotiation follows webob', () => {
  const cases: Array<[string | undefined, string]> = [
    [undefined, 'plain'],
    ['', 'plain'],
    ['*/*', 'html'],
    ['text/html', 'html'],
    ['text/*', 'html'],
    ['text/plain', 'plain'],
    ['application/json', 'json'],
    ['application/*', 'json'],
    ['application/json, text/html;q=0.5', 'json'],
    ['text/html;q=0, */*', 'json'],
    ['text/html;q=0.1, application/json;q=0.1', 'html'],
    ['text/html;level=1', 'plain'],
    ['image/png', 'plain'],
    ['not a media range', 'html'],
    ['text/html;q=2', 'html'],
    ['text/plain, */*;q=0.01', 'html'],
  ];
  for (const [accept, expected] of cases)
    assert.equal(negotiateErrorVariant(accept), expected, `Accept: ${accept}`);
});
