/**
 * `loadTokenizer(dir)`: a model's tokenizer.json and tokenizer_config.json from a directory (as a
 * cluster mounts them), loaded on the process's tokenizer worker (once per directory there), and
 * its chat template compiled here.
 */

import { join, resolve } from 'node:path';
import { ChatTemplate } from './chat-template.js';
import { TokenizeError, TokenizerLoadError } from './errors.js';
import { TOKENIZER_FILE_LIMITS } from './files.js';
import { ModelTokenizer, type TokenizerOptions } from './model-tokenizer.js';
import type { FileLimits } from './protocol.js';
import { LOAD_STALL_MS, tokenizerThread } from './thread.js';

/**
 * Loads the tokenizer in `dir`.
 * @throws TokenizerLoadError naming the file (or directory) and the reason: missing, over its size
 *   bound, not UTF-8 / JSON / an object, a tokenizer the library refuses, a chat template that is
 *   malformed or does not compile, or the worker dying meanwhile.
 */
export async function loadTokenizer(dir: string, options: TokenizerOptions = {}): Promise<ModelTokenizer> {
  const abs = resolve(dir);
  const limits: FileLimits = { ...TOKENIZER_FILE_LIMITS, ...options.fileLimits };
  const thread = tokenizerThread();
  thread.acquire();
  try {
    const reply = await thread.request({ op: 'load', dir: abs, limits }, Math.max(LOAD_STALL_MS, options.stallMs ?? 0));
    if (!reply.ok) {
      throw reply.load !== undefined ? new TokenizerLoadError(reply.load.path, reply.load.reason) : new TokenizerLoadError(abs, reply.message);
    }
    if (!('info' in reply)) throw new TokenizerLoadError(abs, 'the tokenizer worker answered out of turn');
    const template = ChatTemplate.compile(reply.info.chatTemplate, reply.info.specialTokens, join(abs, 'tokenizer_config.json'));
    return new ModelTokenizer({ dir: abs, limits, info: reply.info, template, thread, options });
  } catch (err) {
    thread.release();
    if (err instanceof TokenizeError) throw new TokenizerLoadError(abs, err.message);
    throw err;
  }
}
