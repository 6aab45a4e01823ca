import { seededRandom, type Random } from '../../core/weighted.js';

/*
 * Synthetic prompt text. Benchmarks of the field size prompts in tokens; without a tokenizer we use
 * the common rule of thumb of ~4 characters of English per token, and build text from a fixed word
 * list so it looks like language to anything that inspects it (a word list also keeps the byte
 * distribution realistic for the gateway's prefix hashing). Every piece of text is derived from
 * (seed, key), never from a shared PRNG stream, so a group's system prompt is the same whatever
 * order requests are generated or sent in.
 */

/** Characters per token assumed when sizing text. */
export const CHARS_PER_TOKEN = 4;

const WORDS = (
  'the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were ' +
  'her she there been one all we their has would when if so no what up out can more about time into only some could ' +
  'them see other than then now look come its over think also back after use two how our work first well way even new ' +
  'want because any these give day most us model cache token server request answer route policy gateway prefix batch ' +
  'queue memory block prompt stream latency value system user group table river mountain garden window kitchen market ' +
  'letter history science music travel weather planet forest ocean city village doctor teacher student engine signal ' +
  'number paper light water green quiet early simple common strong little great small large short long high low open ' +
  'close begin end carry learn follow change answer question reason example result method theory practice evidence'
).split(' ');

/** A 32-bit seed from a base seed and a key, by FNV-1a over their text; stable across runs and platforms. */
export function deriveSeed(seed: number, ...key: ReadonlyArray<string | number>): number {
  let h = 0x811c9dc5;
  const text = `${seed}|${key.join('|')}`;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** A PRNG for one key under a seed (see {@link deriveSeed}). */
export function keyedRandom(seed: number, ...key: ReadonlyArray<string | number>): Random {
  return seededRandom(deriveSeed(seed, ...key));
}

/**
 * Text of exactly `tokens × 4` characters made of words drawn from `random`: about `tokens` tokens
 * for a typical BPE tokenizer. 0 tokens ⇒ the empty string.
 */
export function syntheticText(random: Random, tokens: number): string {
  const length = Math.max(0, Math.round(tokens)) * CHARS_PER_TOKEN;
  if (length === 0) return '';
  const parts: string[] = [];
  // Length of the words joined by single spaces.
  let size = -1;
  while (size < length) {
    const word = WORDS[Math.floor(random() * WORDS.length)] ?? 'the';
    parts.push(word);
    size += word.length + 1;
  }
  const text = parts.join(' ').slice(0, length);
  // A trailing space would be stripped by some tokenizers' normalisation; keep the text well-formed.
  return text.endsWith(' ') ? `${text.slice(0, -1)}.` : text;
}

/** Text for `tokens` tokens under (seed, key): the same arguments always give the same text. */
export function keyedText(tokens: number, seed: number, ...key: ReadonlyArray<string | number>): string {
  return syntheticText(keyedRandom(seed, ...key), tokens);
}
