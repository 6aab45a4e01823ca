import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { errorMap, formatPath, issueToProblem } from './issues.js';
import { KINDS } from './kinds/index.js';
import { didYouMean } from './suggest.js';
import { KNOWN_ANNOTATIONS, type IgnoredDocument, type LoadResult, type Problem, type Resource, type Source } from './types.js';
import { unknownFields } from './unknown-fields.js';

const CONFIG_FILE = /\.(ya?ml|json)$/i;

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** `Kind/name` when the document says so, else the file and document number. */
function subjectOf(doc: Record<string, unknown>, source: Source): string {
  const kind = typeof doc['kind'] === 'string' ? doc['kind'] : undefined;
  const meta = doc['metadata'];
  const name = isRecord(meta) && typeof meta['name'] === 'string' && meta['name'] !== '' ? meta['name'] : undefined;
  if (kind !== undefined) return `${kind}/${name ?? '<unnamed>'}`;
  return documentLabel(source);
}

function documentLabel(source: Source): string {
  return `${source.file} (document ${source.index + 1})`;
}

interface Accumulator {
  resources: Resource[];
  problems: Problem[];
  ignored: IgnoredDocument[];
}

/** Validates one document (a `List` is unpacked) and adds what it yields to `acc`. */
function addDocument(value: unknown, source: Source, acc: Accumulator): void {
  if (value === null || value === undefined) return; // an empty document, e.g. a trailing `---`
  if (!isRecord(value)) {
    acc.problems.push({ severity: 'error', subject: documentLabel(source), path: '-', message: 'a document must be a mapping with apiVersion, kind and metadata', source });
    return;
  }
  const subject = subjectOf(value, source);
  const problem = (path: string, message: string, severity: Problem['severity'] = 'error'): void => {
    acc.problems.push({ severity, subject, path, message, source });
  };
  const kind = value['kind'];
  const apiVersion = value['apiVersion'];
  if (typeof kind !== 'string' || kind === '') return problem('kind', 'required');
  if (typeof apiVersion !== 'string' || apiVersion === '') return problem('apiVersion', 'required');

  if (kind === 'List' || kind.endsWith('List')) {
    const items = value['items'];
    if (!Array.isArray(items)) return problem('items', 'a List must have an items list');
    for (const item of items) addDocument(item, source, acc);
    return;
  }

  const spec = KINDS.get(kind);
  if (spec === undefined) {
    const meta = value['metadata'];
    acc.ignored.push({ apiVersion, kind, name: isRecord(meta) && typeof meta['name'] === 'string' ? meta['name'] : '', source });
    return;
  }
  const schema = spec.versions[apiVersion];
  if (schema === undefined) {
    return problem('apiVersion', `${kind} is read in ${Object.keys(spec.versions).join(' or ')}, not ${apiVersion}`);
  }
  const parsed = schema.safeParse(value, { error: errorMap });
  let refused = false;
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const p = issueToProblem(issue);
      problem(p.path, p.message);
    }
    refused = true;
  }
  // Strict as `kubectl apply` is: an unknown field refuses the document. Kinds we read only a
  // little of (Pods, Services) carry far more than we model, and stay open.
  if (spec.strictFields) {
    for (const field of unknownFields(schema, value)) {
      if (SERVER_SET_TOP_LEVEL.has(field.path)) continue;
      problem(field.path, `unknown field${didYouMean(field.key, field.known)}`);
      refused = true;
    }
  }
  for (const p of unknownAnnotations(value)) {
    problem(p.path, p.message);
    refused = true;
  }
  if (refused || !parsed.success) return;
  acc.resources.push({ apiVersion, kind, source, ...(parsed.data as object) } as Resource);
}

/** Top-level fields every object has or a cluster adds (`status` is written by controllers). */
const SERVER_SET_TOP_LEVEL: ReadonlySet<string> = new Set(['apiVersion', 'kind', 'status']);

/** Annotation keys under a prefix the gateway owns or reads that it does not know (typos). */
function unknownAnnotations(doc: Record<string, unknown>): { path: string; message: string }[] {
  const meta = doc['metadata'];
  const annotations = isRecord(meta) ? meta['annotations'] : undefined;
  if (!isRecord(annotations)) return [];
  const out: { path: string; message: string }[] = [];
  for (const key of Object.keys(annotations)) {
    for (const [prefix, known] of KNOWN_ANNOTATIONS) {
      if (!key.startsWith(prefix) || known.includes(key)) continue;
      const everyKnown = [...KNOWN_ANNOTATIONS.values()].flat();
      out.push({ path: formatPath(['metadata', 'annotations', key]), message: `unknown annotation under ${prefix}${didYouMean(key, everyKnown)} (known: ${known.join(', ')})` });
    }
  }
  return out;
}

/** Two documents that define the same object: the later one would silently win, so it is an error. */
function reportDuplicates(acc: Accumulator): void {
  const seen = new Map<string, Resource>();
  const kept: Resource[] = [];
  for (const r of acc.resources) {
    const key = `${r.kind}|${r.metadata.namespace}|${r.metadata.name}`;
    const first = seen.get(key);
    if (first !== undefined) {
      acc.problems.push({
        severity: 'error',
        subject: `${r.kind}/${r.metadata.name}`,
        path: 'metadata.name',
        message: `defined twice in namespace ${r.metadata.namespace}: also in ${documentLabel(first.source)}`,
        source: r.source,
      });
      continue;
    }
    seen.set(key, r);
    kept.push(r);
  }
  acc.resources = kept;
}

/**
 * Parses a multi-document YAML (or JSON) text. YAML syntax errors, schema violations, unknown
 * fields (in the kinds read in full) and duplicates are errors; documents of kinds the gateway does not
 * read are listed as ignored.
 */
export function parseDocuments(text: string, file: string): LoadResult {
  const acc: Accumulator = { resources: [], problems: [], ignored: [] };
  parseInto(text, file, acc);
  reportDuplicates(acc);
  return acc;
}

function parseInto(text: string, file: string, acc: Accumulator): void {
  const docs = parseAllDocuments(text);
  // parseAllDocuments returns an EmptyStream (not an array) for a file with no documents.
  if (!Array.isArray(docs)) return;
  docs.forEach((doc, index) => {
    const source: Source = { file, index };
    if (doc.errors.length > 0) {
      for (const err of doc.errors) {
        const at = err.linePos?.[0];
        const where = at === undefined ? '' : ` at line ${at.line}, column ${at.col}`;
        acc.problems.push({ severity: 'error', subject: documentLabel(source), path: '-', message: `YAML syntax error${where}: ${err.message.split('\n')[0] ?? err.message}`, source });
      }
      return;
    }
    addDocument(doc.toJS({ maxAliasCount: 100 }), source, acc);
  });
}

/** Files to read for a path: the file itself, or every *.yaml / *.yml / *.json under a folder, in path order. */
async function expand(path: string): Promise<string[]> {
  const info = await stat(path);
  if (!info.isDirectory()) return [path];
  const entries = await readdir(path, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const e of entries) {
    const full = join(path, e.name);
    if (e.isDirectory() && !e.name.startsWith('.')) out.push(...(await expand(full)));
    else if (e.isFile() && CONFIG_FILE.test(e.name)) out.push(full);
  }
  return out;
}

/** Loads files and folders as one configuration. A path that cannot be read is an error, not a crash. */
export async function loadFiles(paths: readonly string[]): Promise<LoadResult> {
  const acc: Accumulator = { resources: [], problems: [], ignored: [] };
  for (const path of paths) {
    let files: string[];
    try {
      files = await expand(path);
    } catch (err) {
      acc.problems.push({ severity: 'error', subject: path, path: '-', message: `cannot read: ${(err as Error).message}` });
      continue;
    }
    for (const file of files) {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        acc.problems.push({ severity: 'error', subject: file, path: '-', message: `cannot read: ${(err as Error).message}` });
        continue;
      }
      parseInto(text, file, acc);
    }
  }
  reportDuplicates(acc);
  return acc;
}
