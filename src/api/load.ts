import type { Dirent } from 'node:fs';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
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

/**
 * Validates one object that is already a plain value (a Kubernetes API response's item, say) as a
 * document of the YAML loader: the same schemas, unknown-field checks and problems, with `source`
 * naming where it came from. A `List` is unpacked; duplicates are the caller's to judge.
 */
export function parseObject(value: unknown, source: Source): LoadResult {
  const acc: Accumulator = { resources: [], problems: [], ignored: [] };
  addDocument(value, source, acc);
  return acc;
}

function parseInto(text: string, file: string, acc: Accumulator): void {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines });
  // parseAllDocuments returns an EmptyStream (not an array) for a file with no documents.
  if (!Array.isArray(docs)) return;
  docs.forEach((doc, index) => {
    // The line where the document's content starts (after its `---`), so an error names file and line.
    const source: Source = { file, index, line: lines.linePos(doc.contents?.range[0] ?? doc.range[0]).line };
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
async function expand(path: string, visited = new Set<string>()): Promise<string[]> {
  const info = await stat(path);
  if (!info.isDirectory()) return [path];
  // A symbolic link back up the tree must not loop.
  const real = await realpath(path);
  if (visited.has(real)) return [];
  visited.add(real);
  const entries = await readdir(path, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const e of entries) {
    const full = join(path, e.name);
    const kind = await configEntryKind(full, e);
    if (kind === 'folder') out.push(...(await expand(full, visited)));
    else if (kind === 'file') out.push(full);
  }
  return out;
}

/**
 * What a folder entry is to the loader: a config file (*.yaml, *.yml, *.json), a folder to walk
 * (its name not starting with a dot), or nothing. A symbolic link counts as what it points at:
 * Kubernetes mounts each key of a ConfigMap as a link through the hidden `..data` folder (which is
 * itself skipped, so nothing is read twice); a dangling link is nothing.
 */
export async function configEntryKind(full: string, entry: Dirent): Promise<'file' | 'folder' | undefined> {
  let isDirectory = entry.isDirectory();
  let isFile = entry.isFile();
  if (entry.isSymbolicLink()) {
    const target = await stat(full).catch(() => undefined);
    isDirectory = target?.isDirectory() === true;
    isFile = target?.isFile() === true;
  }
  if (isDirectory) return entry.name.startsWith('.') ? undefined : 'folder';
  return isFile && CONFIG_FILE.test(entry.name) ? 'file' : undefined;
}

/**
 * The files of a load as they were read: `stamps` maps each file read to its stamp
 * (`inode:size:mtimeMs`), `torn` lists files that changed while they were read (the stamp before
 * and after the read differ, or the bytes read are not the size), whose text may be half-written.
 */
export interface LoadedFiles extends LoadResult {
  readonly stamps: ReadonlyMap<string, string>;
  readonly torn: readonly string[];
}

/** A file's identity and content stamp: a rename over it changes the inode, a write its size or mtime. */
export function fileStamp(s: { readonly ino: number; readonly size: number; readonly mtimeMs: number }): string {
  return `${s.ino}:${s.size}:${s.mtimeMs}`;
}

/**
 * Loads files and folders as one configuration. A path that cannot be read is an error, not a
 * crash. Each file is stat'ed before and after it is read, so a caller can tell a consistent read
 * from one that raced a writer (`torn`) and read again later.
 */
export async function loadFiles(paths: readonly string[]): Promise<LoadedFiles> {
  const acc: Accumulator = { resources: [], problems: [], ignored: [] };
  const stamps = new Map<string, string>();
  const torn: string[] = [];
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
        const before = fileStamp(await stat(file));
        const bytes = await readFile(file);
        const afterStat = await stat(file);
        const after = fileStamp(afterStat);
        stamps.set(file, after);
        if (before !== after || bytes.length !== afterStat.size) torn.push(file);
        text = bytes.toString('utf8');
      } catch (err) {
        // Listed a moment ago and gone now: deleted (or being replaced) while read, not unreadable.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') torn.push(file);
        else acc.problems.push({ severity: 'error', subject: file, path: '-', message: `cannot read: ${(err as Error).message}` });
        continue;
      }
      parseInto(text, file, acc);
    }
  }
  reportDuplicates(acc);
  return { ...acc, stamps, torn };
}
