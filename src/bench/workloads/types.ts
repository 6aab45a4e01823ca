/** Chat roles the workloads produce. */
export type Role = 'system' | 'user' | 'assistant';

/** One chat message. */
export interface ChatMessage {
  readonly role: Role;
  readonly content: string;
}

/** The workload kinds `infergate bench --workload` accepts. */
export const WORKLOAD_KINDS = ['shared-prefix', 'multi-turn', 'random', 'lora'] as const;
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

/**
 * One request to send. Workloads always describe the prompt as chat `messages`; the client renders
 * them as a single `prompt` for the completions API ({@link promptText}), which keeps a shared
 * system prompt a shared prefix of the text.
 */
export interface RequestSpec {
  /** Position in the order the workload handed requests out, from 0. */
  readonly seq: number;
  /** `model` of the body: the base model, or a LoRA adapter name. */
  readonly model: string;
  readonly messages: readonly ChatMessage[];
  /** `max_tokens`: the output length (exact when the server honours `ignore_eos`). */
  readonly maxTokens: number;
  /** shared-prefix: the group (system prompt) and user (question) indexes. */
  readonly group?: number;
  readonly user?: number;
  /** multi-turn: the conversation and its turn, from 0. */
  readonly conversationId?: number;
  readonly turn?: number;
}

/** What the runner reports back about a finished request. */
export interface RequestOutcome {
  /** true when the response completed with HTTP 200 and no stream error. */
  readonly ok: boolean;
  /** The answer text received (possibly partial on failure). */
  readonly text: string;
}

/**
 * A source of requests. Static workloads have every request ready at once and repeat their
 * sequence when asked for more than `size`; multi-turn hands out a conversation's next turn only
 * after `complete` reported the previous one, because that turn's history contains the answer.
 */
export interface Workload {
  readonly kind: WorkloadKind;
  /** Requests in one pass (G×U, C×T, or the configured count). */
  readonly size: number;
  /**
   * true when the workload ends by itself (multi-turn: after its C×T turns); false when it repeats
   * or generates forever (static workloads), so the runner bounds it by `size` unless told otherwise.
   */
  readonly finite: boolean;
  /**
   * The next request ready to send, or `undefined` if none is ready now (multi-turn: every open
   * conversation is waiting for an answer) — see {@link Workload.done} for whether more will come.
   */
  next(): RequestSpec | undefined;
  /** Reports that a request handed out by `next` finished. Static workloads ignore it. */
  complete(spec: RequestSpec, outcome: RequestOutcome): void;
  /** true once `next` will never return a request again. Static workloads never finish. */
  readonly done: boolean;
}

/**
 * The completions-API prompt for chat messages: contents joined by blank lines, in order. Plain
 * text rather than a model's chat template because the bench does not know the model; what
 * matters for routing is that equal leading messages give an equal leading text.
 */
export function promptText(messages: readonly ChatMessage[]): string {
  return messages.map((m) => m.content).join('\n\n');
}
