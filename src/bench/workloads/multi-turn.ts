import type { MultiTurnParams } from './params.js';
import { keyedText } from './text.js';
import type { ChatMessage, RequestOutcome, RequestSpec, Workload } from './types.js';

interface Conversation {
  readonly id: number;
  /** system + every completed (user, assistant) pair. */
  readonly history: ChatMessage[];
  nextTurn: number;
}

/**
 * Multi-turn chat: C conversations of T turns, each turn resending the whole history (system
 * prompt, every earlier question and the server's real earlier answers) plus a new question, like
 * the seed's round1/round2 example. At most `activeConversations` are open at once; a conversation
 * issues turn t+1 only after turn t completed, because that turn's answer is part of the next
 * prompt. When one ends, the next unopened conversation opens.
 *
 * A failed turn (non-200, stream error, timeout) ends its conversation: the answer the next turn
 * needs does not exist. Its remaining turns are not sent, so a run with errors sends fewer than C×T.
 *
 * Ready turns are handed out first come, first served (FIFO over completion order).
 */
export class MultiTurnWorkload implements Workload {
  readonly kind = 'multi-turn' as const;
  readonly finite = true;
  readonly size: number;
  readonly #params: MultiTurnParams;
  readonly #seed: number;
  readonly #model: string;
  readonly #ready: Conversation[] = [];
  readonly #waiting = new Map<number, Conversation>();
  readonly #commonPrefix: string;
  #opened = 0;
  #seq = 0;

  constructor(params: MultiTurnParams, seed: number, model: string) {
    this.#params = params;
    this.#seed = seed;
    this.#model = model;
    this.size = params.conversations * params.turns;
    this.#commonPrefix = keyedText(params.commonPrefixTokens, seed, 'multi-turn', 'common');
    for (let i = 0; i < Math.min(params.activeConversations, params.conversations); i++) this.#open();
  }

  #open(): void {
    if (this.#opened >= this.#params.conversations) return;
    const id = this.#opened++;
    const own = keyedText(this.#params.systemTokens, this.#seed, 'multi-turn', 'system', id);
    const content = [this.#commonPrefix, own].filter((s) => s !== '').join(' ');
    this.#ready.push({ id, history: content === '' ? [] : [{ role: 'system', content }], nextTurn: 0 });
  }

  get done(): boolean {
    return this.#ready.length === 0 && this.#waiting.size === 0 && this.#opened >= this.#params.conversations;
  }

  /** Conversations whose next turn is waiting for an answer. */
  get waiting(): number {
    return this.#waiting.size;
  }

  next(): RequestSpec | undefined {
    const conv = this.#ready.shift();
    if (conv === undefined) return undefined;
    const turn = conv.nextTurn;
    const question = keyedText(this.#params.userTokens, this.#seed, 'multi-turn', 'user', conv.id, turn);
    this.#waiting.set(conv.id, conv);
    return {
      seq: this.#seq++,
      model: this.#model,
      maxTokens: this.#params.outputTokens,
      conversationId: conv.id,
      turn,
      // A copy: the history grows after this spec is recorded.
      messages: [...conv.history, { role: 'user', content: question }],
    };
  }

  complete(spec: RequestSpec, outcome: RequestOutcome): void {
    if (spec.conversationId === undefined) return;
    const conv = this.#waiting.get(spec.conversationId);
    if (conv === undefined || conv.nextTurn !== spec.turn) return;
    this.#waiting.delete(conv.id);
    const last = spec.messages[spec.messages.length - 1];
    if (outcome.ok && last !== undefined) {
      conv.history.push(last, { role: 'assistant', content: outcome.text });
      conv.nextTurn++;
      if (conv.nextTurn < this.#params.turns) {
        this.#ready.push(conv);
        return;
      }
    }
    this.#open();
  }
}
