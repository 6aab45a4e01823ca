/**
 * A model's chat template (tokenizer_config.json `chat_template`), compiled once with
 * @huggingface/jinja, rendered per request the way transformers' `apply_chat_template` does for
 * vLLM: `messages`, `tools` (null when the request has none, as transformers passes None),
 * `documents: null`, `add_generation_prompt: true`, and the special tokens' strings (`bos_token`,
 * `eos_token`, `unk_token`, `pad_token`; a config may hold each as a string or as an AddedToken
 * object `{content, …}`).
 */

import { Template } from '@huggingface/jinja';
import { TokenizeError, TokenizerLoadError } from './errors.js';
import type { TemplateMessage } from './chat-turn.js';

function tokenString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return undefined;
}

/** Picks the template source: a string, or the entry named "default" of a list of {name, template}. */
function templateSource(raw: unknown, path: string): string | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw === 'string') return raw;
  if (Array.isArray(raw)) {
    for (const entry of raw as unknown[]) {
      if (typeof entry !== 'object' || entry === null) continue;
      const { name, template } = entry as { name?: unknown; template?: unknown };
      if (name === 'default') {
        if (typeof template !== 'string') throw new TokenizerLoadError(path, 'chat_template "default" is not a string');
        return template;
      }
    }
    throw new TokenizerLoadError(path, 'chat_template is a list of named templates without one named "default"');
  }
  throw new TokenizerLoadError(path, 'chat_template is neither a string nor a list of named templates');
}

export class ChatTemplate {
  readonly #template: Template;
  readonly #specials: Record<string, string>;

  private constructor(template: Template, specials: Record<string, string>) {
    this.#template = template;
    this.#specials = specials;
  }

  /**
   * Compiles the config's template; undefined when it has none.
   * @param path tokenizer_config.json's path, for errors.
   * @throws TokenizerLoadError when the template is malformed or does not compile.
   */
  static compile(raw: unknown, specialTokens: Readonly<Record<string, unknown>>, path: string): ChatTemplate | undefined {
    const source = templateSource(raw, path);
    if (source === undefined) return undefined;
    let template: Template;
    try {
      template = new Template(source);
    } catch (err) {
      throw new TokenizerLoadError(path, `chat_template does not compile (${(err as Error).message})`);
    }
    const specials: Record<string, string> = {};
    for (const [key, value] of Object.entries(specialTokens)) {
      const s = tokenString(value);
      if (s !== undefined) specials[key] = s;
    }
    return new ChatTemplate(template, specials);
  }

  /** The prompt text for these messages. @throws TokenizeError('template') if the template fails. */
  render(messages: readonly TemplateMessage[], tools: unknown): string {
    try {
      return this.#template.render({
        ...this.#specials,
        messages,
        tools: tools ?? null,
        documents: null,
        add_generation_prompt: true,
      });
    } catch (err) {
      throw new TokenizeError('template', `the chat template refused the messages: ${String((err as Error)?.message ?? err).slice(0, 300)}`);
    }
  }
}
