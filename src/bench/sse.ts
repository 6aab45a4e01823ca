/*
 * An incremental Server-Sent Events reader for OpenAI-style streams. Network reads split the stream
 * anywhere — inside a `data:` line, inside the JSON, between `\r` and `\n`, inside a multi-byte
 * UTF-8 character — so bytes are decoded in streaming mode and only complete lines are parsed.
 * Follows the SSE rules that matter here: lines end with CRLF, LF or CR; `data:` lines (one
 * optional space after the colon) accumulate, joined by `\n`; a blank line dispatches the event;
 * lines starting with `:` are comments; other fields (`event`, `id`, `retry`) are ignored.
 */

/** Feeds bytes in, gets complete events' `data` out. */
export class SseParser {
  readonly #decoder = new TextDecoder('utf-8');
  #buffer = '';
  #data: string[] = [];
  #hasData = false;

  /** Consumes a chunk; returns the `data` of every event it completed, in order. */
  push(chunk: Uint8Array | string): string[] {
    this.#buffer += typeof chunk === 'string' ? chunk : this.#decoder.decode(chunk, { stream: true });
    return this.#drain(false);
  }

  /** End of stream: dispatches a last event that lacked its blank line (lenient, as browsers are not). */
  end(): string[] {
    this.#buffer += this.#decoder.decode();
    const out = this.#drain(true);
    if (this.#hasData) out.push(this.#take());
    return out;
  }

  #take(): string {
    const data = this.#data.join('\n');
    this.#data = [];
    this.#hasData = false;
    return data;
  }

  #drain(final: boolean): string[] {
    const out: string[] = [];
    let start = 0;
    const buf = this.#buffer;
    for (let i = 0; i < buf.length; i++) {
      const c = buf.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      // A CR at the very end may be the first half of a CRLF split across reads: wait for more.
      if (c === 13 && i === buf.length - 1 && !final) break;
      this.#line(buf.slice(start, i), out);
      if (c === 13 && buf.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
    }
    this.#buffer = buf.slice(start);
    if (final && this.#buffer !== '') {
      this.#line(this.#buffer, out);
      this.#buffer = '';
    }
    return out;
  }

  #line(line: string, out: string[]): void {
    if (line === '') {
      if (this.#hasData) out.push(this.#take());
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    if (field !== 'data') return;
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    this.#data.push(value);
    this.#hasData = true;
  }
}
