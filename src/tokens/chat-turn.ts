/**
 * OpenAI chat messages as a vLLM server hands them to the chat template.
 *
 * vLLM (vllm/entrypoints/chat_utils.py, `_parse_chat_message_content`, content format "string",
 * the one for templates that read `message['content']` as text, Llama 3's among them): a string
 * content is kept; null/absent content is ""; a list of content parts becomes its text parts'
 * `text` joined with "\n" (`text_prompt = "\n".join(texts)`); an assistant message keeps
 * `tool_calls`, a tool message `tool_call_id`, any message a string `name`.
 *
 * Templates in vLLM's "openai" content format (they loop over content parts) are not told apart:
 * their text-only requests are rendered with the joined string too (documented limitation).
 *
 * A non-text part (an image, audio, video, file) makes the request unmatchable: the engine's
 * token ids then include placeholder tokens expanded by the model's processor, which the gateway
 * does not run. It is refused with `TokenizeError('multimodal')`, so the caller falls back.
 */

import { TokenizeError } from './errors.js';

/** An OpenAI content part: `{type: "text", text}`, or a media part (`image_url`, `input_audio`, …). */
export interface ChatContentPart {
  readonly type: string;
  readonly text?: string;
  readonly [field: string]: unknown;
}

/** An OpenAI chat message (the fields a chat template may read). */
export interface ChatTurn {
  readonly role: string;
  readonly content?: string | readonly (ChatContentPart | string)[] | null;
  readonly name?: string;
  readonly tool_calls?: readonly unknown[] | null;
  readonly tool_call_id?: string;
}

/** A message as the template sees it: content always a string. */
export interface TemplateMessage {
  role: string;
  content: string;
  name?: string;
  tool_calls?: unknown[];
  tool_call_id?: string;
}

/** Text-carrying part types (vLLM parses `refusal` parts as text too). */
const TEXT_PARTS = new Set(['text', 'refusal']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Joins a content value into the template's string. @throws TokenizeError multimodal | invalid-message */
export function contentText(content: unknown, index: number): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw new TokenizeError('invalid-message', `messages[${index}].content must be a string, null or a list of parts`);
  const texts: string[] = [];
  for (const part of content as unknown[]) {
    if (typeof part === 'string') {
      texts.push(part);
      continue;
    }
    if (!isRecord(part) || typeof part['type'] !== 'string') {
      throw new TokenizeError('invalid-message', `messages[${index}].content has a part without a type`);
    }
    const type = part['type'];
    if (TEXT_PARTS.has(type)) {
      const text = part[type === 'refusal' ? 'refusal' : 'text'];
      if (typeof text !== 'string') throw new TokenizeError('invalid-message', `messages[${index}].content has a ${type} part without a string ${type}`);
      texts.push(text);
      continue;
    }
    throw new TokenizeError('multimodal', `messages[${index}] has a non-text content part (${type.slice(0, 40)}); its token ids depend on the model's processor`);
  }
  return texts.join('\n');
}

/** Converts client messages to the template's input. @throws TokenizeError multimodal | invalid-message */
export function templateMessages(messages: readonly ChatTurn[]): TemplateMessage[] {
  if (!Array.isArray(messages)) throw new TokenizeError('invalid-message', 'messages must be a list');
  return messages.map((m: unknown, i) => {
    if (!isRecord(m) || typeof m['role'] !== 'string') throw new TokenizeError('invalid-message', `messages[${i}] has no string role`);
    const out: TemplateMessage = { role: m['role'], content: contentText(m['content'], i) };
    if (typeof m['name'] === 'string') out.name = m['name'];
    if (out.role === 'assistant' && Array.isArray(m['tool_calls'])) out.tool_calls = m['tool_calls'] as unknown[];
    if (out.role === 'tool' && typeof m['tool_call_id'] === 'string') out.tool_call_id = m['tool_call_id'];
    return out;
  });
}
