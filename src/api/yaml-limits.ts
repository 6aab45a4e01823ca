import { isAlias, isMap, isPair, isScalar, isSeq, type Document, type Node } from 'yaml';

/**
 * What the configuration loader refuses in YAML before it reads a document as data, and where.
 *
 * Every refusal names the document (its index, and `Kind/name` where the text says them) and the
 * field path and line where it occurs, as a schema error does: a bomb nested under `spec:` of the
 * fortieth resource is reported there, not at the top of the file.
 */

/**
 * Deepest nesting of mappings and lists a document may have (block and flow levels together;
 * request bodies are held to the same 128). Real resources nest a few dozen levels at most; the
 * YAML library composes recursively and exhausts its stack near a thousand levels, and a file of
 * 100,000 `- ` (200 KB) used to kill the process (V8's fatal out-of-memory), so nesting is
 * measured on the text before the library sees it.
 */
export const MAX_YAML_NESTING = 128;

/**
 * Longest scalar (its text in the file): Kubernetes stores no object over 1.5 MiB and a ConfigMap
 * holds 1 MiB in all, so no value we read is larger.
 */
export const MAX_SCALAR_CHARS = 1024 * 1024;

/** Longest mapping key: YAML's own bound on implicit keys (1,024 characters); Kubernetes keys are under 320. */
export const MAX_KEY_CHARS = 1024;

/**
 * Alias nodes a document may expand to, counted as the YAML library counts them (each alias by
 * the size of what it repeats): real configuration repeats an anchor a few times, an alias bomb
 * (aliases of aliases, a billion laughs) millions.
 */
export const MAX_ALIAS_COUNT = 100;

/** Refusals reported per document; past them one mistake mostly repeats. */
const MAX_REFUSALS = 5;

/**
 * Tags a document may carry: YAML 1.2's core schema (what JSON and Kubernetes' YAML mean). Others
 * (`!!binary`, `!!set`, `!!omap`, `!!timestamp`, application tags such as `!Ref`) would be read
 * as something other than what the writer meant, or as plain strings after a warning.
 */
const ALLOWED_TAGS: ReadonlySet<string> = new Set(['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => `tag:yaml.org,2002:${t}`));

/** One refusal: where (offset in the text, field path from the document's root) and why. */
export interface YamlRefusal {
  readonly offset: number;
  readonly segments: readonly PropertyKey[];
  readonly message: string;
}

/** A document the text scan refused for its nesting, with the text range it spans. */
export interface DeepDocument extends YamlRefusal {
  /** 0-based index of the document in the file, as the YAML library counts them. */
  readonly index: number;
  /** `Kind/name` as far as the document's own top-level lines say. */
  readonly subject: string | undefined;
  /** Offsets of the document's content: from its first line after `---` to the next marker. */
  readonly start: number;
  readonly end: number;
}

interface Level {
  readonly indent: number;
  /** The path segments the current line adds at this level (a list index, a key, or both). */
  segments: PropertyKey[];
  /** Items seen at this level when it is a list (`- ` lines). */
  items: number;
  /**
   * The key of this level's last line when it had no value on its line (`deep:`): a list may
   * follow at the same indentation, as that key's value.
   */
  openKey: string | undefined;
}

const DOC_START = /^---(?=\s|$)/;
const DOC_END = /^\.\.\.(?=\s|$)/;
const KEY = /^(?:"((?:[^"\\]|\\.)*)"|'((?:[^']|'')*)'|([^\s#'"[\]{},:&*!|>%@`-][^:#]*?|-[^\s:#][^:#]*?))[ \t]*:(?=[ \t]|$)/;
const PROPS = /^(?:[&!][^\s,[\]{}]*[ \t]+)+/;
const BLOCK_SCALAR = /^[|>][0-9+-]*[ \t]*(#.*)?$/;

/**
 * Documents nested deeper than `max`, found by one linear pass over the text (it never hands the
 * text to the YAML library). The measure is an upper bound of the real nesting that stays close
 * to it: indentation levels, compact `- `/`? ` indicators on a line, and open flow brackets
 * (quotes, comments and block scalars skipped).
 */
export function deepDocuments(text: string, max = MAX_YAML_NESTING): DeepDocument[] {
  const out: DeepDocument[] = [];
  let index = 0;
  let content = false; // the current document has content (a `---` then starts the next one)
  let ended = false; // a `...` ended the current document
  let docStart = 0;
  let levels: Level[] = [];
  let blockScalarOf: number | undefined; // indentation of the line that opened a block scalar
  let flow = 0; // open flow brackets
  let flowPath: PropertyKey[] = [];
  let quote: '"' | "'" | undefined; // a quoted scalar still open at the end of the previous line
  let refused: Omit<DeepDocument, 'end'> | undefined;

  const close = (end: number): void => {
    if (refused !== undefined) out.push({ ...refused, end });
    refused = undefined;
  };
  const path = (): PropertyKey[] => [...levels.flatMap((l) => l.segments), ...flowPath];

  let pos = 0;
  while (pos <= text.length) {
    let eol = text.indexOf('\n', pos);
    if (eol < 0) eol = text.length;
    const line = text.slice(pos, eol);
    const lineStart = pos;
    pos = eol + 1;

    if (flow === 0 && quote === undefined && (DOC_START.test(line) || DOC_END.test(line))) {
      const isStart = DOC_START.test(line);
      close(lineStart);
      if (isStart) {
        if (content || ended) index++;
        content = false;
        ended = false;
        docStart = lineStart + 3;
        levels = [];
        blockScalarOf = undefined;
        const rest = line.slice(3);
        if (rest.trim() === '' || rest.trim().startsWith('#')) continue;
        // Content on the marker's line (`--- {a: 1}`): read as a line of its own.
      } else {
        ended = true;
        levels = [];
        blockScalarOf = undefined;
        continue;
      }
    }
    if (refused !== undefined) continue; // the rest of a refused document is not read

    let at = 0;
    let extra = 0; // compact indicators on this line
    const mark = (): boolean => {
      if (levels.length + flow + extra <= max) return false;
      refused = { index, subject: undefined, start: docStart, offset: lineStart + at, segments: path(), message: `nested more than ${max} levels deep (mappings and lists)` };
      flow = 0;
      flowPath = [];
      quote = undefined;
      return true;
    };

    if (quote === undefined && flow === 0) {
      const indent = /^ */.exec(line)?.[0].length ?? 0;
      const body = line.slice(indent);
      if (blockScalarOf !== undefined) {
        if (body === '' || indent > blockScalarOf) continue;
        blockScalarOf = undefined;
      }
      if (body === '' || body.startsWith('#') || (body.startsWith('%') && levels.length === 0 && !content)) continue;
      if (ended) {
        index++;
        ended = false;
        docStart = lineStart;
      }
      content = true;
      while (levels.length > 0 && (levels[levels.length - 1] as Level).indent > indent) levels.pop();
      let level = levels[levels.length - 1];
      if (level === undefined || level.indent < indent) {
        level = { indent, segments: [], items: 0, openKey: undefined };
        levels.push(level);
      }
      level.segments = [];
      at = indent;
      if (level.openKey !== undefined && /^-(?:[ \t]|$)/.test(body)) {
        // `key:` then `- item` at the key's indentation: the list is the key's value, one level deeper.
        level.segments.push(level.openKey);
        extra++;
      } else {
        level.openKey = undefined;
      }
      if (mark()) continue;
      // Compact indicators: `- - x`, `- ? k`, each one more level.
      for (;;) {
        const m = /^([-?:])(?:[ \t]+|$)/.exec(line.slice(at));
        if (m === null) break;
        if (m[1] === '-') level.segments.push(extra === 0 ? level.items++ : 0);
        at += m[0].length;
        extra++;
        if (mark()) break;
      }
      if (refused !== undefined) continue;
      const key = KEY.exec(line.slice(at));
      if (key !== null) {
        const name = key[1] ?? key[2]?.replace(/''/g, "'") ?? (key[3] as string).trim();
        level.segments.push(name);
        at += key[0].length;
        at += /^[ \t]*/.exec(line.slice(at))?.[0].length ?? 0;
        if (extra === 0) {
          const rest = line.slice(at);
          level.openKey = rest === '' || rest.startsWith('#') ? name : undefined;
          if (level.openKey !== undefined) level.items = 0;
        }
      }
      at += PROPS.exec(line.slice(at))?.[0].length ?? 0;
      const value = line.slice(at);
      if (BLOCK_SCALAR.test(value)) {
        blockScalarOf = indent;
        continue;
      }
      const first = value[0];
      if (first === '"' || first === "'") {
        quote = first;
        at++;
      } else if (first === '[' || first === '{') {
        // A flow collection starts here; read below.
      } else {
        continue; // a plain scalar, a comment, or nothing: no deeper level on this line
      }
    }

    // Inside a quoted scalar or a flow collection: scan the characters.
    let last = ' ';
    while (at < line.length) {
      const c = line[at] as string;
      if (quote === '"') {
        if (c === '\\') at++;
        else if (c === '"') quote = undefined;
      } else if (quote === "'") {
        if (c === "'") {
          if (line[at + 1] === "'") at++;
          else quote = undefined;
        }
      } else if (c === '#' && (last === ' ' || last === '\t')) {
        break;
      } else if (c === '[' || c === '{') {
        flow++;
        flowPath.push(c === '[' ? 0 : '…');
        if (mark()) break;
      } else if (c === ']' || c === '}') {
        flow = Math.max(0, flow - 1);
        flowPath.pop();
      } else if ((c === '"' || c === "'") && flow > 0 && /[[{,:\s]/.test(last)) {
        quote = c;
      }
      if (c !== ' ' && c !== '\t') last = c;
      else last = ' ';
      at++;
    }
    if (refused !== undefined) continue;
  }
  close(text.length);
  for (let i = 0; i < out.length; i++) {
    const d = out[i] as DeepDocument;
    out[i] = { ...d, subject: subjectOfText(text.slice(d.start, Math.min(d.end, d.start + 64 * 1024))) };
  }
  return out;
}

/** A field path for a message: a deep one shows its first levels, then `…`. */
export function shownPath(segments: readonly PropertyKey[], format: (s: readonly PropertyKey[]) => string): string {
  return segments.length <= 12 ? format(segments) : `${format(segments.slice(0, 10))}…`;
}

/** `Kind/name` from a document's top-level `kind:` and `metadata` `name:` lines, when they say both. */
function subjectOfText(text: string): string | undefined {
  const kind = /^kind:[ \t]*["']?([A-Za-z][A-Za-z0-9]*)/m.exec(text)?.[1];
  if (kind === undefined) return undefined;
  const name = /^metadata:[ \t]*\{[^}\n]*?\bname:[ \t]*["']?([^,}\s"']+)/m.exec(text)?.[1] ?? /^metadata:[ \t]*\n(?:[ \t]+.*\n)*?[ \t]+name:[ \t]*["']?([^\s"'#]+)/m.exec(text)?.[1];
  return name === undefined ? undefined : `${kind}/${name}`;
}

/**
 * Replaces a document's content with a null document (`~` then spaces), keeping every newline, so
 * the other documents keep their indexes and lines when the text is parsed without it.
 */
export function blankDocument(text: string, start: number, end: number): string {
  const middle = text.slice(start, end).replace(/[^\n]/g, ' ');
  const nl = middle.indexOf('\n');
  const blanked = nl === 0 ? `\n~${middle.slice(2)}` : `~${middle.slice(1)}`;
  return text.slice(0, start) + (middle.length === 0 ? '' : blanked) + text.slice(end);
}

/** `Kind/name` of a parsed document (without reading it as data); undefined when it does not say both. */
export function documentSubject(doc: Document.Parsed): string | undefined {
  const root = doc.contents;
  if (!isMap(root)) return undefined;
  const get = (map: unknown, key: string): unknown => (isMap(map) ? map.items.find((p) => isScalar(p.key) && p.key.value === key)?.value : undefined);
  const kind = get(root, 'kind');
  if (!isScalar(kind) || typeof kind.value !== 'string' || kind.value === '') return undefined;
  const name = get(get(root, 'metadata'), 'name');
  // Without a name the file and document number say more than `Kind/<unnamed>`.
  return isScalar(name) && typeof name.value === 'string' && name.value !== '' ? `${kind.value}/${name.value}` : undefined;
}

function keyName(key: unknown): PropertyKey {
  return isScalar(key) ? String(key.value) : '?';
}

function rangeOf(node: unknown): readonly [number, number, number] | undefined {
  return (node as { range?: [number, number, number] } | null)?.range ?? undefined;
}

/** The field path of the node at `offset` in a parsed document (the deepest that contains it). */
export function pathAt(doc: Document.Parsed, offset: number): PropertyKey[] {
  const out: PropertyKey[] = [];
  let node: unknown = doc.contents;
  for (let depth = 0; depth <= MAX_YAML_NESTING + 1; depth++) {
    let next: unknown;
    if (isMap(node)) {
      for (const pair of node.items) {
        const k = rangeOf(pair.key);
        const v = rangeOf(pair.value);
        const from = k?.[0] ?? v?.[0];
        const to = v?.[2] ?? k?.[2];
        if (from === undefined || to === undefined || offset < from || offset > to) continue;
        out.push(keyName(pair.key));
        next = v !== undefined && offset >= v[0] ? pair.value : undefined;
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        const r = rangeOf(item);
        if (r !== undefined && offset >= r[0] && offset <= r[2]) {
          out.push(i);
          next = item;
        }
      });
    }
    if (next === undefined) break;
    node = next;
  }
  return out;
}

interface AnchorUse {
  count: number;
  aliasCount: number;
}

/**
 * What a parsed document carries that the loader refuses: tags outside the core schema, scalars
 * and keys over their bounds, aliases that expand past `MAX_ALIAS_COUNT` (counted as the YAML
 * library counts them, so this finds a bomb before the library's own check throws without
 * saying where). In document order, at most a few. Nesting is already bounded (deepDocuments).
 */
export function documentRefusals(doc: Document.Parsed): YamlRefusal[] {
  const out: YamlRefusal[] = [];
  const anchors = new Map<string, Node>();
  const uses = new Map<Node, AnchorUse>();
  const refuse = (node: unknown, segments: readonly PropertyKey[], message: string): void => {
    if (out.length < MAX_REFUSALS) out.push({ offset: rangeOf(node)?.[0] ?? 0, segments, message });
  };

  // getAliasCount of the YAML library (nodes/Alias.js): an alias weighs its anchor's uses times
  // its anchor's weight; a collection the heaviest of its items; a scalar 1.
  const weigh = (node: unknown, depth: number): number => {
    if (depth > MAX_YAML_NESTING + 2) return 1;
    if (isAlias(node)) {
      const target = anchors.get(node.source);
      const use = target === undefined ? undefined : uses.get(target);
      return use === undefined ? 0 : use.count * use.aliasCount;
    }
    if (isMap(node) || isSeq(node)) {
      let max = 0;
      for (const item of node.items as unknown[]) max = Math.max(max, weigh(item, depth + 1));
      return max;
    }
    if (isPair(node)) return Math.max(weigh(node.key, depth + 1), weigh(node.value, depth + 1));
    return 1;
  };

  // Depth-first in document order (keys before values), as the library converts.
  const stack: { node: unknown; segments: readonly PropertyKey[] }[] = [{ node: doc.contents, segments: [] }];
  while (stack.length > 0 && out.length < MAX_REFUSALS) {
    const { node, segments } = stack.pop() as { node: unknown; segments: readonly PropertyKey[] };
    if (node === null || node === undefined) continue;
    if (isAlias(node)) {
      const target = anchors.get(node.source);
      if (target === undefined) continue; // the library reports an alias without its anchor
      let use = uses.get(target);
      if (use === undefined) {
        use = { count: 0, aliasCount: 0 };
        uses.set(target, use);
      }
      use.count++;
      if (use.aliasCount === 0) use.aliasCount = weigh(target, 0);
      if (use.count * use.aliasCount > MAX_ALIAS_COUNT) {
        refuse(node, segments, `refused: its aliases (*${node.source}) expand to more than ${MAX_ALIAS_COUNT} nodes, as an alias bomb's do`);
        break;
      }
      continue;
    }
    const n = node as Node;
    if (n.anchor !== undefined) anchors.set(n.anchor, n);
    if (n.tag !== undefined && !ALLOWED_TAGS.has(n.tag)) {
      refuse(n, segments, `the tag ${n.tag.replace('tag:yaml.org,2002:', '!!')} is refused: configuration is plain data (strings, numbers, booleans, null, mappings and lists), as Kubernetes reads it`);
    }
    if (isScalar(n)) {
      const r = rangeOf(n);
      const length = r === undefined ? 0 : r[1] - r[0];
      if (length > MAX_SCALAR_CHARS) refuse(n, segments, `a value of ${length} characters is refused: no field takes more than ${MAX_SCALAR_CHARS} (a ConfigMap holds 1 MiB in all)`);
      continue;
    }
    if (isMap(n)) {
      const children: { node: unknown; segments: readonly PropertyKey[] }[] = [];
      for (const pair of n.items) {
        const name = keyName(pair.key);
        const kr = rangeOf(pair.key);
        const keyLength = kr === undefined ? 0 : kr[1] - kr[0];
        if (keyLength > MAX_KEY_CHARS) {
          refuse(pair.key, [...segments, `${String(name).slice(0, 40)}…`], `a key of ${keyLength} characters is refused: keys are at most ${MAX_KEY_CHARS} (YAML's own bound on implicit keys)`);
          continue;
        }
        if (!isScalar(pair.key)) children.push({ node: pair.key, segments: [...segments, name] });
        children.push({ node: pair.value, segments: [...segments, name] });
      }
      for (let i = children.length - 1; i >= 0; i--) stack.push(children[i] as { node: unknown; segments: readonly PropertyKey[] });
    } else if (isSeq(n)) {
      for (let i = n.items.length - 1; i >= 0; i--) stack.push({ node: n.items[i], segments: [...segments, i] });
    }
  }
  return out;
}
