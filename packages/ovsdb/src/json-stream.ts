/*
 * Framing of an OVSDB stream. RFC 7047 sends JSON-RPC messages back to back with no delimiter (ovsdb-server
 * adds no newline), so messages are cut where a top-level JSON object ends, found by a byte scanner that
 * tracks nesting and strings. Only the scanner looks at every byte; each complete message is decoded once
 * with JSON.parse.
 *
 * A server is not trusted to be well-behaved: anything but whitespace between messages, a message larger
 * than the bound, nesting deeper than the bound, or text JSON.parse refuses is a FramingError. The caller
 * then drops the connection; the framer never throws anything else and never holds more than the bound plus
 * one chunk.
 */
import { FramingError } from './errors.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/** OVSDB values nest six levels at most (message, params, table-updates, row, datum, pair). */
export const DEFAULT_MAX_DEPTH = 64;

export interface FramerOptions {
  /** Largest message accepted, in bytes. */
  readonly maxMessageBytes: number;
  /** Deepest nesting of objects and arrays accepted. */
  readonly maxDepth?: number;
}

export class JsonObjectFramer {
  readonly #max: number;
  readonly #maxDepth: number;
  /** Pieces of the message in progress (all but the last are whole chunks). */
  #pieces: Buffer[] = [];
  #size = 0;
  #depth = 0;
  #inString = false;
  #escape = false;
  #failed = false;

  constructor(options: FramerOptions) {
    this.#max = options.maxMessageBytes;
    this.#maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  }

  /** Bytes of the incomplete message held now. */
  get buffered(): number {
    return this.#size;
  }

  /**
   * Feed the next chunk; returns the messages it completed, in order. Throws FramingError on bad input,
   * after which the framer refuses further input (the connection is to be dropped).
   */
  push(chunk: Buffer): unknown[] {
    if (this.#failed) throw new FramingError('OVSDB_ERR_FRAMING', 'stream already failed');
    try {
      return this.#scan(chunk);
    } catch (err) {
      this.#failed = true;
      this.#pieces = [];
      this.#size = 0;
      throw err;
    }
  }

  #scan(chunk: Buffer): unknown[] {
    const out: unknown[] = [];
    const len = chunk.length;
    let i = 0;
    /** Where the message in progress starts in this chunk (0 when it began in an earlier one). */
    let start = 0;
    /** Next backslash at or after i in this chunk (len: none), found lazily. */
    let backslashAt = -1;
    while (i < len) {
      if (this.#depth === 0) {
        // Between messages: whitespace, or the '{' that opens the next one.
        const b = chunk[i]!;
        if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) {
          i++;
          continue;
        }
        if (b !== OPEN_BRACE) {
          throw new FramingError(
            'OVSDB_ERR_FRAMING',
            `expected a JSON object, got byte 0x${b.toString(16).padStart(2, '0')}`,
          );
        }
        start = i;
        this.#depth = 1;
        i++;
        continue;
      }
      if (this.#inString) {
        if (this.#escape) {
          this.#escape = false;
          i++;
          continue;
        }
        // Jump to the next quote or backslash (memchr) instead of looking at every byte of the string.
        const q = chunk.indexOf(QUOTE, i);
        if (backslashAt < i) {
          backslashAt = chunk.indexOf(BACKSLASH, i);
          // None left in this chunk: remember that instead of searching again for every string.
          if (backslashAt === -1) backslashAt = len;
        }
        if (backslashAt < len && (q === -1 || backslashAt < q)) {
          if (backslashAt + 1 >= len) {
            this.#escape = true;
            i = len;
          } else i = backslashAt + 2;
          continue;
        }
        if (q === -1) {
          i = len;
          continue;
        }
        this.#inString = false;
        i = q + 1;
        continue;
      }
      const b = chunk[i]!;
      if (b === QUOTE) {
        this.#inString = true;
      } else if (b === OPEN_BRACE || b === OPEN_BRACKET) {
        if (++this.#depth > this.#maxDepth)
          throw new FramingError('OVSDB_ERR_FRAMING', `JSON nested deeper than ${this.#maxDepth} levels`);
      } else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        if (--this.#depth === 0) {
          const end = i + 1;
          if (this.#size + (end - start) > this.#max) this.#tooLarge(this.#size + (end - start));
          out.push(this.#complete(chunk.subarray(start, end)));
          start = end;
        }
      }
      i++;
    }
    if (this.#depth > 0) {
      const rest = chunk.subarray(start);
      this.#size += rest.length;
      if (this.#size > this.#max) this.#tooLarge(this.#size);
      // Keep a copy only when the chunk is mostly somebody else's: a small tail must not pin a 64 KiB buffer.
      this.#pieces.push(rest.length < len / 2 ? Buffer.from(rest) : rest);
    }
    return out;
  }

  #complete(last: Buffer): unknown {
    let bytes: Buffer;
    if (this.#pieces.length === 0) bytes = last;
    else {
      this.#pieces.push(last);
      bytes = Buffer.concat(this.#pieces, this.#size + last.length);
      this.#pieces = [];
    }
    this.#size = 0;
    try {
      return JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      throw new FramingError('OVSDB_ERR_FRAMING', `invalid JSON: ${(err as Error).message.slice(0, 200)}`);
    }
  }

  #tooLarge(size: number): never {
    throw new FramingError(
      'OVSDB_ERR_MESSAGE_TOO_LARGE',
      `message of more than ${size} bytes exceeds the limit of ${this.#max}`,
    );
  }
}
