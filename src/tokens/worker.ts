/**
 * The tokenizer worker thread: holds every loaded tokenizer (one per directory, loaded once) and
 * tokenises texts sent by thread.ts, one message at a time, so the main thread's event loop never
 * pays the ~1 µs per character that BPE costs.
 */

import { parentPort } from 'node:worker_threads';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { segmentPlan } from './added-tokens.js';
import { ChatTemplate } from './chat-template.js';
import { TokenizeError, TokenizerLoadError } from './errors.js';
import { readJsonObject } from './files.js';
import type { FileLimits, TokenizerInfo, WorkerReply, WorkerRequest } from './protocol.js';

interface Loaded {
  readonly tokenizer: Tokenizer;
  readonly info: TokenizerInfo;
  /**
   * The chat template, compiled here as well: rendering costs tens of ms for a few thousand
   * messages (the jinja interpreter), client-sized work the main thread must not do.
   */
  readonly template: ChatTemplate | undefined;
}

const loaded = new Map<string, Promise<Loaded>>();

const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const;
const SENTINEL = '\u0000infergate-sequence\u0000';

/** The ids a post-processor puts before and after one sequence (see TokenizerInfo.promptSpecials). */
function promptSpecials(tokenizer: Tokenizer): TokenizerInfo['promptSpecials'] {
  const post = tokenizer.post_processor as unknown as
    | ((tokens: string[], pair: null, addSpecial: boolean) => { tokens: string[] })
    | null;
  if (post === null) return { prefix: [], suffix: [] };
  const tokens = post([SENTINEL], null, true).tokens;
  const at = tokens.indexOf(SENTINEL);
  if (at === -1 || tokens.lastIndexOf(SENTINEL) !== at) return undefined;
  const ids = tokens.map((t) => (t === SENTINEL ? -1 : tokenizer.token_to_id(t)));
  if (ids.some((id) => id === undefined)) return undefined;
  return { prefix: ids.slice(0, at) as number[], suffix: ids.slice(at + 1) as number[] };
}

async function load(dir: string, limits: FileLimits): Promise<Loaded> {
  try {
    if (!(await stat(dir)).isDirectory()) throw new TokenizerLoadError(dir, 'not a directory');
  } catch (err) {
    if (err instanceof TokenizerLoadError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new TokenizerLoadError(dir, code === 'ENOENT' ? 'no such directory' : `cannot read (${code ?? String(err)})`);
  }
  const jsonPath = join(dir, 'tokenizer.json');
  const configPath = join(dir, 'tokenizer_config.json');
  const json = await readJsonObject(jsonPath, limits.tokenizerJsonBytes);
  const config = await readJsonObject(configPath, limits.tokenizerConfigBytes);
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json, config);
  } catch (err) {
    throw new TokenizerLoadError(jsonPath, `not a tokenizer @huggingface/tokenizers can load (${(err as Error).message})`);
  }
  const plan = segmentPlan(json);
  const specialTokens: Record<string, unknown> = {};
  for (const key of SPECIAL_TOKEN_KEYS) if (config[key] !== undefined) specialTokens[key] = config[key];
  const specials = promptSpecials(tokenizer);
  const info: TokenizerInfo = {
    addedTokens: plan.addedTokens,
    exact: plan.exact,
    ...(plan.why !== undefined ? { inexactWhy: plan.why } : {}),
    ...(specials !== undefined ? { promptSpecials: specials } : {}),
    chatTemplate: config['chat_template'],
    specialTokens,
  };
  return { tokenizer, info, template: ChatTemplate.compile(info.chatTemplate, info.specialTokens, configPath) };
}

function loadOnce(dir: string, limits: FileLimits): Promise<Loaded> {
  let p = loaded.get(dir);
  if (p === undefined) {
    p = load(dir, limits);
    loaded.set(dir, p);
    // A failed load is not remembered: the files may be fixed.
    p.catch(() => loaded.delete(dir));
  }
  return p;
}

async function handle(req: WorkerRequest): Promise<void> {
  const port = parentPort!;
  try {
    const { tokenizer, info, template } = await loadOnce(req.dir, req.limits);
    if (req.op === 'load') {
      port.postMessage({ id: req.id, ok: true, info } satisfies WorkerReply);
      return;
    }
    if (req.op === 'render') {
      if (template === undefined) throw new TokenizeError('no-template', `${req.dir}: tokenizer_config.json has no chat_template`);
      port.postMessage({ id: req.id, ok: true, text: template.render(req.messages, req.tools) } satisfies WorkerReply);
      return;
    }
    const ids = req.texts.map((text) => Uint32Array.from(tokenizer.encode(text, { add_special_tokens: req.addSpecialTokens }).ids));
    const texts = req.pieces === true ? ids.map((a) => Array.from(a, (id) => tokenizer.decode([id], { clean_up_tokenization_spaces: false }))) : undefined;
    port.postMessage({ id: req.id, ok: true, ids, ...(texts !== undefined ? { texts } : {}) } satisfies WorkerReply, ids.map((a) => a.buffer as ArrayBuffer));
  } catch (err) {
    const reply: WorkerReply =
      err instanceof TokenizerLoadError
        ? { id: req.id, ok: false, load: { path: err.path, reason: err.reason }, message: err.message }
        : err instanceof TokenizeError && (err.reason === 'template' || err.reason === 'no-template')
          ? { id: req.id, ok: false, failure: err.reason, message: err.message }
          : { id: req.id, ok: false, message: err instanceof Error ? err.message : String(err) };
    port.postMessage(reply);
  }
}

parentPort?.on('message', (req: WorkerRequest) => {
  void handle(req);
});
