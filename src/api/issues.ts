import type { z } from 'zod';

/*
 * zod issues turned into the project's problem format: a dotted field path
 * (`spec.targetModels[1].weight`) and a reason that finishes the sentence
 * `Kind/name: field.path: …`. Kept apart from the schemas so every kind reads the same.
 */

/** `["spec", "targetModels", 1, "weight"]` → `spec.targetModels[1].weight`; keys with dots are quoted. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else {
      const key = String(part);
      out += /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? (out === '' ? key : `.${key}`) : `[${JSON.stringify(key)}]`;
    }
  }
  return out === '' ? '-' : out;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return `${typeof value} ${String(value)}`;
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  object: 'an object',
  array: 'a list',
  record: 'a map of strings',
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
};

/**
 * The per-parse error map: a readable reason for each zod issue that carries no message of its
 * own (schemas give their own for regex and custom checks). Returns undefined to keep zod's text.
 */
export const errorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'required';
      return `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}, got ${describe(issue.input)}`;
    case 'too_big': {
      const max = String(issue.maximum);
      if (issue.origin === 'string') return `must be at most ${max} characters`;
      if (issue.origin === 'array') return `must have at most ${max} items`;
      return `must be at most ${max}`;
    }
    case 'too_small': {
      const min = String(issue.minimum);
      if (issue.origin === 'string') return issue.minimum === 1 ? 'must not be empty' : `must be at least ${min} characters`;
      if (issue.origin === 'array') return `must have at least ${min} item${issue.minimum === 1 ? '' : 's'}`;
      return `must be at least ${min}`;
    }
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => String(v)).join(', ')} (got ${describe(issue.input)})`;
    case 'invalid_union':
      return `has the wrong type (got ${describe(issue.input)})`;
    case 'invalid_key':
      return `key ${JSON.stringify(String(issue.input))} ${issue.issues[0]?.message ?? 'is invalid'}`;
    default:
      return undefined;
  }
};

/** A zod issue as `{ path, message }`, flattening record-key issues onto their map. */
export function issueToProblem(issue: z.core.$ZodIssue): { path: string; message: string } {
  return { path: formatPath(issue.path), message: issue.message };
}
