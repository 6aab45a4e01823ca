import type { Logger } from 'pino';
import type { RequestTokenizer, TokenizerLookup } from '../scheduling/precise-services.js';

/** What the catalog needs of a loaded tokenizer (src/tokens/ `ModelTokenizer`). */
export interface ClosableTokenizer extends RequestTokenizer {
  close(): Promise<void> | void;
}

/** A tokenizer directory's state, for `/debug/endpoints` and the mode gauge. */
export type TokenizerState = { readonly state: 'loading' } | { readonly state: 'ready' } | { readonly state: 'failed'; readonly error: string };

interface Entry {
  state: TokenizerState;
  tokenizer?: ClosableTokenizer;
  failedAt?: number;
  /** The entry was dropped (config no longer names it) while loading: close what arrives. */
  dropped?: boolean;
}

/**
 * A failed directory is tried again on a later configuration change once this long has passed
 * (a volume mounted late, a file being copied), never in a loop on its own.
 */
const RETRY_FAILED_AFTER_MS = 30_000;

/**
 * The tokenizers the precise pools name, by directory: loaded once when a configuration first
 * names a directory (off the request path, logged with the outcome), shared by every pool and
 * model that names it, closed when no configuration names it any more. Until a directory is
 * loaded, and after it failed, `get` answers undefined and the pools using it judge requests in
 * estimate mode (counted as `tokenizer_loading` / `no_tokenizer`).
 */
export class TokenizerCatalog implements TokenizerLookup {
  readonly #entries = new Map<string, Entry>();
  readonly #load: (dir: string) => Promise<ClosableTokenizer>;
  readonly #logger: Logger;
  readonly #now: () => number;

  constructor(load: (dir: string) => Promise<ClosableTokenizer>, logger: Logger, now: () => number = () => performance.now()) {
    this.#load = load;
    this.#logger = logger;
    this.#now = now;
  }

  get(path: string): RequestTokenizer | undefined {
    return this.#entries.get(path)?.tokenizer;
  }

  failed(path: string): boolean {
    return this.#entries.get(path)?.state.state === 'failed';
  }

  stateOf(path: string): TokenizerState | undefined {
    return this.#entries.get(path)?.state;
  }

  /** Makes the catalog hold exactly `paths`: loads the new ones (and failed ones due a retry), closes the rest. */
  sync(paths: ReadonlySet<string>): void {
    for (const [path, entry] of this.#entries) {
      if (paths.has(path)) continue;
      this.#entries.delete(path);
      entry.dropped = true;
      void entry.tokenizer?.close();
    }
    for (const path of paths) {
      const entry = this.#entries.get(path);
      if (entry !== undefined && !(entry.state.state === 'failed' && this.#now() - (entry.failedAt ?? 0) >= RETRY_FAILED_AFTER_MS)) continue;
      this.#start(path);
    }
  }

  async close(): Promise<void> {
    const all = [...this.#entries.values()];
    this.#entries.clear();
    for (const e of all) e.dropped = true;
    await Promise.all(all.map((e) => e.tokenizer?.close()));
  }

  #start(path: string): void {
    const entry: Entry = { state: { state: 'loading' } };
    this.#entries.set(path, entry);
    const startedAt = this.#now();
    this.#load(path).then(
      (tokenizer) => {
        if (entry.dropped === true) {
          void tokenizer.close();
          return;
        }
        entry.tokenizer = tokenizer;
        entry.state = { state: 'ready' };
        this.#logger.info({ tokenizer: path, loadMs: Math.round(this.#now() - startedAt) }, 'tokenizer loaded: precise prefix-cache routing is on for the pools using it');
      },
      (err: unknown) => {
        if (entry.dropped === true) return;
        const error = (err instanceof Error ? err.message : String(err)).slice(0, 300);
        entry.state = { state: 'failed', error };
        entry.failedAt = this.#now();
        this.#logger.warn({ tokenizer: path, error }, 'tokenizer failed to load: the pools using it route in estimate mode');
      },
    );
  }
}
