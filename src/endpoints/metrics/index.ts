/** Model-server `/metrics` pages → the gateway's view of an endpoint's load. */
export { scanMetrics, parseSampleValue } from './prometheus-text.js';
export type { MetricType, Sample, ScanOptions, ScanResult, WantedFamilies } from './prometheus-text.js';
export { DEFAULT_DIALECT, DIALECTS, detectDialect, resolveDialect, dialectFromPrefixes, ALL_PREFIXES } from './dialects.js';
export type { Dialect, DialectSpec, DerivedSource, LoraSource, MetricSource, SeriesSource } from './dialects.js';
export { extractMetrics } from './extract.js';
export type { ExtractResult } from './extract.js';
export { NUMERIC_SIGNALS, SIGNAL_RULES } from './signals.js';
export type { Combine, LoraState, ModelServerMetrics, NumericSignal, SignalRule, Unit } from './signals.js';
