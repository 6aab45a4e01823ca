/**
 * The model-server simulator's engine core (no HTTP): a vLLM-V1-like continuous-batching engine
 * with a paged, prefix-cached KV cache, LoRA slots and modelled time. HTTP faces build on this.
 */
export { SimClock, type SimClockOptions, type SimTimer } from './clock.js';
export {
  IM_END,
  IM_START,
  countTokens,
  estimateTokens,
  messageText,
  pieceId,
  renderChat,
  tokenize,
  tokenizePieces,
  type ChatContentPart,
  type ChatMessage,
} from './tokenizer.js';
export {
  AnswerStream,
  MAX_ANSWER_TOKENS,
  MAX_HEADER_NAME,
  answerHeader,
  modelSelfName,
  type AnswerVoice,
  MIN_ANSWER_TOKENS,
  answerLength,
  answerSeed,
  generateAnswer,
  naturalAnswerLength,
  type AnswerLength,
  type AnswerPieces,
  WORDS as ANSWER_WORDS,
} from './output.js';
export { fmix32, fnv1a32 } from './hash.js';
export { extraKey, hashBlock, hashFullBlocks } from './block-hash.js';
export { KvCache } from './kv-cache.js';
export { LoraSlots, type LoraAcquire } from './lora-slots.js';
export {
  PROFILES,
  chunkContextPairs,
  findProfile,
  resolveProfile,
  stepDurationMs,
  type EngineProfile,
  type EngineProfileOverrides,
  type ProfileName,
  type StepWork,
} from './profiles.js';
export {
  Histogram,
  ITL_BUCKETS_S,
  REQUEST_LATENCY_BUCKETS_S,
  TTFT_BUCKETS_S,
  type HistogramSnapshot,
} from './histogram.js';
export {
  EngineRequestError,
  checkErrorMessage,
  checkErrorStatus,
  checkErrorType,
  type CheckError,
  type CheckResult,
  type CheckedRequest,
  type EngineRequest,
  type FinishReason,
  type RequestCallbacks,
  type RequestHandle,
  type RequestResult,
} from './request.js';
export { Engine, type EngineOptions, type EngineStats, type FinishCounts, type KvEvent } from './engine.js';
