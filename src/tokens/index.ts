/**
 * Request token ids as a vLLM server computes them: the model's own tokenizer and chat template,
 * off the event loop, with a cache of text pieces for multi-turn conversations.
 */

export { loadTokenizer } from './load.js';
export { ModelTokenizer, TOKENIZER_DEFAULTS, type TokenizerCounters, type TokenizerOptions } from './model-tokenizer.js';
export type { ChatTurn, ChatContentPart } from './chat-turn.js';
export { TokenizeError, TokenizerLoadError, TOKENIZE_FAILURES, type TokenizeFailure } from './errors.js';
export { TOKENIZER_FILE_LIMITS } from './files.js';
