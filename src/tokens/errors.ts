/**
 * What can go wrong when turning a request into token ids, as typed errors a caller can branch on
 * (the precise prefix scorer falls back to estimate mode; the simulator answers 400 or 500).
 *
 * `TokenizerLoadError`: the model's files could not be loaded (missing, too large, not JSON, a
 * tokenizer the library refuses, a chat template that does not compile); it names the file.
 * `TokenizeError`: one request could not be tokenised; `reason` is one of `TOKENIZE_FAILURES`, a
 * fixed set usable as a metric label.
 */

/** A tokenizer directory that cannot be used. `path` is the file (or directory) at fault. */
export class TokenizerLoadError extends Error {
  override readonly name = 'TokenizerLoadError';
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}

/**
 * Why one request got no token ids:
 * - `multimodal`: a message has a non-text content part (an image, audio…): the engine's ids
 *   depend on its processor, so the request cannot be matched against KV blocks;
 * - `invalid-message`: a message is not an OpenAI chat message (no string role, content neither a
 *   string, null nor a list of parts);
 * - `no-template`: a chat request for a model whose tokenizer_config.json has no chat_template
 *   (vLLM refuses such requests too);
 * - `template`: the chat template raised an error or failed while rendering these messages;
 * - `too-large`: the text is over the per-job bound (`maxJobChars`);
 * - `busy`: the worker's queue is over its bound (`maxQueuedJobs` / `maxQueuedChars`): fall back;
 * - `worker`: the worker thread failed or died during the job (it is restarted for the next one);
 * - `closed`: the tokenizer was closed.
 */
export const TOKENIZE_FAILURES = [
  'multimodal',
  'invalid-message',
  'no-template',
  'template',
  'too-large',
  'busy',
  'worker',
  'closed',
] as const;
export type TokenizeFailure = (typeof TOKENIZE_FAILURES)[number];

/** One request that could not be tokenised; see `TokenizeFailure` for the reasons. */
export class TokenizeError extends Error {
  override readonly name = 'TokenizeError';
  constructor(
    readonly reason: TokenizeFailure,
    message: string,
  ) {
    super(message);
  }
}
