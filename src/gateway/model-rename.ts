/**
 * Puts the model name the client asked for back into a response. The gateway sent the server a
 * rewritten target (`travel-v1`), so the server answers with that name; when the answer is to
 * carry the client's name (`assistant`: an InferenceModelRewrite by default, or any rewrite under
 * `responseModelName: requested`; model-target.ts says which), this swaps it back, as upstream's
 * newer endpoint picker does. Works on bytes as they stream: `"model":"<target>"` (also with one
 * space after the colon, as Python's json module writes it) becomes `"model":"<requested>"`,
 * across any chunk boundary.
 *
 * Safe on any JSON: inside a JSON string quotes are escaped, so the pattern with bare quotes only
 * occurs as a `model` key and its value, never inside generated text or tool arguments.
 */
export class ModelRenamer {
  readonly #patterns: readonly Buffer[];
  readonly #replacements: readonly Buffer[];
  /** Bytes that may be the start of a pattern split by a chunk boundary. */
  #carry: Buffer = EMPTY;
  readonly #keep: number;

  constructor(target: string, requested: string) {
    const t = JSON.stringify(target);
    const r = JSON.stringify(requested);
    this.#patterns = [Buffer.from(`"model":${t}`), Buffer.from(`"model": ${t}`)];
    this.#replacements = [Buffer.from(`"model":${r}`), Buffer.from(`"model": ${r}`)];
    this.#keep = Math.max(...this.#patterns.map((p) => p.length)) - 1;
  }

  /**
   * One chunk; returns the bytes ready for the client. `whole`: the chunk ends where no pattern can
   * continue (an SSE event boundary: the pattern has no line break), so nothing is held back and a
   * stream that breaks after it has given the client every byte of its complete events.
   */
  push(chunk: Buffer, whole = false): Buffer {
    const data = this.#carry.length === 0 ? chunk : Buffer.concat([this.#carry, chunk]);
    const { out, replacedUpTo } = this.#replace(data);
    if (whole) {
      this.#carry = EMPTY;
      return out;
    }
    // Hold back a tail that could be the beginning of a pattern completed by the next chunk
    // (never bytes of a replacement already made: they are final).
    const hold = Math.min(this.#keep, out.length - replacedUpTo);
    this.#carry = Buffer.from(out.subarray(out.length - hold));
    return out.subarray(0, out.length - hold);
  }

  end(): Buffer {
    const rest = this.#carry;
    this.#carry = EMPTY;
    return rest;
  }

  /** `data` with every pattern replaced; `replacedUpTo`: the end of the last replacement in `out`. */
  #replace(data: Buffer): { out: Buffer; replacedUpTo: number } {
    let parts: Buffer[] | undefined;
    let from = 0;
    let outLength = 0;
    for (;;) {
      let best = -1;
      let which = 0;
      this.#patterns.forEach((p, i) => {
        const at = data.indexOf(p, from);
        if (at !== -1 && (best === -1 || at < best)) {
          best = at;
          which = i;
        }
      });
      if (best === -1) break;
      parts ??= [];
      const replacement = this.#replacements[which] as Buffer;
      parts.push(data.subarray(from, best), replacement);
      outLength += best - from + replacement.length;
      from = best + (this.#patterns[which] as Buffer).length;
    }
    if (parts === undefined) return { out: data, replacedUpTo: 0 };
    parts.push(data.subarray(from));
    return { out: Buffer.concat(parts), replacedUpTo: outLength };
  }
}

const EMPTY = Buffer.alloc(0);
