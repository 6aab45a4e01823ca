/**
 * The text a request's prefix is judged by. Completions: the `prompt` (string, list of strings, or
 * token ids as text). Chat: the messages in order, each rendered as `role\ncontent\n\n`.
 * Responses API: the `instructions` as a system message, then the `input` (a string is a user
 * message; items are messages). Embeddings: the `input` (string, strings or token ids). Any fixed
 * rendering works for matching requests against each other; this one has the property that
 * matters for multi-turn chat: rendering a conversation plus the assistant's answer is a prefix of
 * rendering the next turn, so the index can credit a pod with the answer it generated.
 */
export function promptText(body: Readonly<Record<string, unknown>>): string | undefined {
  const messages = body['messages'];
  if (Array.isArray(messages)) return renderMessages(messages);
  const prompt = body['prompt'];
  if (prompt !== undefined) return promptValue(prompt);
  const input = body['input'];
  if (input === undefined) return undefined;
  const instructions = body['instructions'];
  const system = typeof instructions === 'string' ? [{ role: 'system', content: instructions }] : [];
  if (typeof input === 'string') return renderMessages([...system, { role: 'user', content: input }]);
  if (Array.isArray(input) && input.some((i) => i !== null && typeof i === 'object' && !Array.isArray(i))) return renderMessages([...system, ...input]);
  return promptValue(input);
}

/** A string, a list of strings, token ids or lists of token ids, as text. */
function promptValue(prompt: unknown): string | undefined {
  if (typeof prompt === 'string') return prompt;
  if (Array.isArray(prompt)) return prompt.map((p) => (typeof p === 'string' ? p : Array.isArray(p) ? p.join(' ') : String(p))).join('\n');
  return undefined;
}

export function renderMessages(messages: readonly unknown[]): string {
  let out = '';
  for (const m of messages) {
    if (m === null || typeof m !== 'object') continue;
    const { role, content } = m as { role?: unknown; content?: unknown };
    out += `${typeof role === 'string' ? role : ''}\n${contentText(content)}\n\n`;
  }
  return out;
}

/** A message's text: a string, or the `text` parts of a content-part array (`text`, `input_text`, `output_text`). */
function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let out = '';
  for (const part of content) {
    if (part !== null && typeof part === 'object' && typeof (part as { text?: unknown }).text === 'string') out += (part as { text: string }).text;
  }
  return out;
}

/** The text of a chat answer appended to its conversation, for indexing what the pod now caches. */
export function withAnswer(body: Readonly<Record<string, unknown>>, answer: string): string | undefined {
  const messages = body['messages'];
  if (Array.isArray(messages)) return renderMessages([...messages, { role: 'assistant', content: answer }]);
  if (body['input'] !== undefined && body['prompt'] === undefined) {
    const text = promptText(body);
    return text === undefined ? undefined : text + renderMessages([{ role: 'assistant', content: answer }]);
  }
  const prompt = promptText(body);
  return prompt === undefined ? undefined : prompt + answer;
}

/** Rough token count (≈ 4 characters per token), for load accounting before the server says. */
export function estimateTokens(chars: number): number {
  return Math.ceil(chars / 4);
}
