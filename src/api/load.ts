import type { Dirent } from 'node:fs';
import { lstat, open, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Document } from 'yaml';
import { withFieldLines } from './field-lines.js';
import { errorMap, formatPath, issueToProblem } from './issues.js';
import { KINDS } from './kinds/index.js';
import { didYouMean } from './suggest.js';
import { KNOWN_ANNOTATIONS, type IgnoredDocument, type LoadResult, type Problem, type Resource, type Source } from './types.js';
import { unknownFields } from './unknown-fields.js';
import { blankDocument, deepDocuments, documentRefusals, documentSubject, MAX_ALIAS_COUNT, pathAt, shownPath } from './yaml-limits.js';

const CONFIG_FILE = /\.(ya?ml|json)$/i;

/**
 * Largest configuration file read, in bytes. Kubernetes stores no object over 1.5 MiB and a
 * ConfigMap holds 1 MiB; 16 MiB leaves room for a `kubectl get pods -o yaml` of thousands of
 * Pods, while the YAML parser's tree (tens of bytes per source byte) stays well inside the heap.
 */
export const MAX_CONFIG_FILE_BYTES = 16 * 1024 * 1024;

/** YAML syntax errors reported per document; the rest are counted. */
const MAX_SYNTAX_ERRORS = 5;

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

/**
 * Where a field of the document is: the problem's source with the field's line (`segments` are
 * the field's keys and indexes from the document's root). The document's source when unknown.
 */
type Locate = (segments: readonly PropertyKey[]) => Source;

/** Validates one document (a `List` is unpacked) and adds what it yields to `acc`. */
function addDocument(value: unknown, source: Source, acc: Accumulator, locate: Locate = () => source): void {
  if (value === null || value === undefined) return; // an empty document, e.g. a trailing `---`
  if (!isRecord(value)) {
    acc.problems.push({ severity: 'error', subject: documentLabel(source), path: '-', message: `a document must be a mapping with apiVersion, kind and metadata, not ${Array.isArray(value) ? 'a list' : `a ${typeof value}`}`, source: locate([]) });
    return;
  }
  const subject = subjectOf(value, source);
  const problem = (segments: readonly PropertyKey[], message: string, path: string = formatPath(segments)): void => {
    acc.problems.push({ severity: 'error', subject, path, message, source: locate(segments) });
  };
  const kind = value['kind'];
  const apiVersion = value['apiVersion'];
  if (typeof kind !== 'string' || kind === '') return problem(['kind'], 'required');
  if (typeof apiVersion !== 'string' || apiVersion === '') return problem(['apiVersion'], 'required');

  if (kind === 'List' || kind.endsWith('List')) {
    const items = value['items'];
    if (!Array.isArray(items)) return problem(['items'], 'a List must have an items list');
    items.forEach((item, i) => addDocument(item, source, acc, (segments) => locate(['items', i, ...segments])));
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
    return problem(['apiVersion'], `${kind} is read in ${Object.keys(spec.versions).join(' or ')}, not ${apiVersion}`);
  }
  const parsed = schema.safeParse(value, { error: errorMap });
  let refused = false;
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const p = issueToProblem(issue);
      problem(issue.path, p.message, p.path);
    }
    refused = true;
  }
  // Strict as `kubectl apply` is: an unknown field refuses the document. Kinds we read only a
  // little of (Pods, Services) carry far more than we model, and stay open.
  if (spec.strictFields) {
    for (const field of unknownFields(schema, value)) {
      if (SERVER_SET_TOP_LEVEL.has(field.path)) continue;
      problem(field.segments, `unknown field${didYouMean(field.key, field.known)}`, field.path);
      refused = true;
    }
  }
  for (const p of unknownAnnotations(value)) {
    problem(p.segments, p.message);
    refused = true;
  }
  if (refused || !parsed.success) return;
  // Each resource its own source, with its fields' lines: what is said of a field later (compile
  // warnings) names the field's line too.
  const own = withFieldLines(source, value, spec.strictFields, (segments) => locate(segments).line);
  acc.resources.push({ apiVersion, kind, source: own, ...(parsed.data as object) } as Resource);
}

/** Top-level fields every object has or a cluster adds (`status` is written by controllers). */
const SERVER_SET_TOP_LEVEL: ReadonlySet<string> = new Set(['apiVersion', 'kind', 'status']);

/** Annotation keys under a prefix the gateway owns or reads that it does not know (typos). */
function unknownAnnotations(doc: Record<string, unknown>): { segments: readonly string[]; message: string }[] {
  const meta = doc['metadata'];
  const annotations = isRecord(meta) ? meta['annotations'] : undefined;
  if (!isRecord(annotations)) return [];
  const out: { segments: readonly string[]; message: string }[] = [];
  for (const key of Object.keys(annotations)) {
    for (const [prefix, known] of KNOWN_ANNOTATIONS) {
      if (!key.startsWith(prefix) || known.includes(key)) continue;
      const everyKnown = [...KNOWN_ANNOTATIONS.values()].flat();
      out.push({ segments: ['metadata', 'annotations', key], message: `unknown annotation under ${prefix}${didYouMean(key, everyKnown)} (known: ${known.join(', ')})` });
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
  // Nesting is measured on the text first: the YAML library composes recursively (a file of
  // 100,000 `- ` exhausted the process). A document nested too deep is refused where it goes too
  // deep, and parsed as empty so the other documents keep their indexes, lines and problems.
  const deep = deepDocuments(text);
  for (const d of deep) text = blankDocument(text, d.start, d.end);
  const lineOf = (offset: number): number => {
    let line = 1;
    for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) line++;
    return line;
  };
  for (const d of deep) {
    acc.problems.push({ severity: 'error', subject: d.subject ?? documentLabel({ file, index: d.index }), path: shownPath(d.segments, formatPath), message: d.message, source: { file, index: d.index, line: lineOf(d.offset) } });
  }
  const refusedDocs = new Set(deep.map((d) => d.index));
  let docs: Document.Parsed[] | { empty: true };
  try {
    docs = parseAllDocuments(text, { lineCounter: lines });
  } catch (err) {
    // The parser gave up on the whole text.
    acc.problems.push({ severity: 'error', subject: file, path: '-', message: `cannot be parsed as YAML: ${err instanceof Error ? err.message : String(err)}`, source: { file, index: 0 } });
    return;
  }
  // parseAllDocuments returns an EmptyStream (not an array) for a file with no documents.
  if (!Array.isArray(docs)) return;
  docs.forEach((doc, index) => {
    if (refusedDocs.has(index)) return;
    // The line where the document's content starts (after its `---`), so an error names file and line.
    const source: Source = { file, index, line: lines.linePos(doc.contents?.range[0] ?? doc.range[0]).line };
    // Problems of the text name the resource and the field when the document says them.
    const subject = documentSubject(doc) ?? documentLabel(source);
    if (doc.errors.length > 0) {
      // The first few: past them the parser mostly repeats one mistake's consequences (an
      // unclosed bracket is one error per bracket still open).
      for (const err of doc.errors.slice(0, MAX_SYNTAX_ERRORS)) {
        const at = err.linePos?.[0];
        const segments = pathAt(doc, err.pos[0]);
        const duplicate = err.code === 'DUPLICATE_KEY';
        acc.problems.push({
          severity: 'error',
          subject,
          path: shownPath(segments, formatPath),
          message: duplicate ? 'duplicate key: YAML keys must be unique in a mapping (a later one would silently replace the first)' : `YAML syntax error: ${yamlReason(err.message)}`,
          source: at === undefined ? source : { file, index, line: at.line, column: at.col },
        });
      }
      if (doc.errors.length > MAX_SYNTAX_ERRORS) {
        const more = doc.errors.length - MAX_SYNTAX_ERRORS;
        acc.problems.push({ severity: 'error', subject, path: '-', message: `${more} more YAML syntax error(s) not shown`, source, count: more });
      }
      return;
    }
    const refusals = documentRefusals(doc);
    if (refusals.length > 0) {
      for (const r of refusals) {
        acc.problems.push({ severity: 'error', subject, path: formatPath(r.segments), message: r.message, source: { file, index, line: lines.linePos(r.offset).line } });
      }
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      // Not expected after documentRefusals; said with the document's name at least.
      const message = err instanceof Error ? err.message : String(err);
      acc.problems.push({
        severity: 'error',
        subject,
        path: '-',
        message: /alias count/i.test(message) ? `refused: its aliases (*name) expand to more than ${MAX_ALIAS_COUNT} nodes, as an alias bomb's do` : `cannot be read as data: ${message}`,
        source,
      });
      return;
    }
    addDocument(value, source, acc, (segments) => ({ file, index, line: lines.linePos(fieldOffset(doc, segments)).line }));
  });
}

/**
 * The YAML library's reason without the position it appends (` at line 2, column 8:`, then an
 * excerpt of the text): the problem's source carries the position, said once when printed.
 */
function yamlReason(message: string): string {
  const first = message.split('\n')[0] ?? message;
  return first.replace(/ at line \d+, column \d+:?\s*$/, '').replace(/:\s*$/, '');
}

/**
 * The offset in the text of a field (`segments` from the document's root): its key's, or for a
 * list item its own; a field that is not in the text (a required one missing) gives its nearest
 * enclosing field's; the document's content start when none is found.
 */
function fieldOffset(doc: Document.Parsed, segments: readonly PropertyKey[]): number {
  let node: unknown = doc.contents;
  let at = doc.contents?.range[0] ?? doc.range[0];
  for (const segment of segments) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(segment));
      if (pair === undefined) break;
      const keyAt = isScalar(pair.key) ? pair.key.range?.[0] : undefined;
      if (keyAt !== undefined) at = keyAt;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item: unknown = node.items[segment];
      if (item === undefined) break;
      const itemAt = (item as { range?: [number, number, number] }).range?.[0];
      if (itemAt !== undefined) at = itemAt;
      node = item;
    } else {
      break;
    }
  }
  return at;
}

/**
 * Files to read for a path: the file itself, or every *.yaml / *.yml / *.json under a folder, in
 * path order. Links under a folder that name a config file but lead nowhere go to `dangling`.
 */
async function expand(path: string, dangling: string[], visited = new Set<string>()): Promise<string[]> {
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
    if (kind === 'folder') out.push(...(await expand(full, dangling, visited)));
    else if (kind === 'file') out.push(full);
    else if (kind === 'dangling') dangling.push(full);
  }
  return out;
}

/**
 * What a folder entry is to the loader: a config file (*.yaml, *.yml, *.json), a folder to walk,
 * a config file's link that leads nowhere (`dangling`), or nothing. Names starting with a dot are
 * nothing: the kubelet's `..data` and timestamped folders, and editors' lock and swap files (Emacs
 * keeps `.#pool.yaml`, itself a dangling link, while a file is edited). A symbolic link counts as
 * what it points at: Kubernetes mounts each key of a ConfigMap as a link through `..data`, so each
 * key is read once.
 *
 * A link that names a config file but whose target cannot be read (missing, a loop, no permission)
 * is `dangling`, not nothing: read as nothing, a link repointed at a wrong path would remove every
 * resource its file served. The kubelet leaves a removed key's link dangling only for the moment
 * between swapping `..data` and deleting the link; the file source reads again before it trusts one.
 */
export async function configEntryKind(full: string, entry: Dirent): Promise<'file' | 'folder' | 'dangling' | undefined> {
  if (entry.name.startsWith('.')) return undefined;
  let isDirectory = entry.isDirectory();
  let isFile = entry.isFile();
  if (entry.isSymbolicLink()) {
    const target = await stat(full).catch(() => undefined);
    if (target === undefined) return CONFIG_FILE.test(entry.name) ? 'dangling' : undefined;
    isDirectory = target.isDirectory();
    isFile = target.isFile();
  }
  if (isDirectory) return 'folder';
  return isFile && CONFIG_FILE.test(entry.name) ? 'file' : undefined;
}

/** Why a config file's link cannot be followed, for its problem line. */
async function danglingProblem(link: string): Promise<Problem> {
  const target = await readlink(link).catch(() => '?');
  const why = await stat(link).then(
    () => 'it can be read now (it changed during the load)',
    (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? 'which does not exist' : err.code === 'ELOOP' ? 'which loops back on itself' : `which cannot be read (${err.code ?? err.message})`),
  );
  return { severity: 'error', subject: link, path: '-', message: `is a symbolic link to ${JSON.stringify(target)}, ${why}: fix the link or remove it to remove what it served` };
}

/**
 * The files of a load as they were read: `stamps` maps each file read to its stamp
 * (`inode:size:mtimeMs`), `torn` lists files that changed while they were read (the stamp before
 * and after the read differ, or the bytes read are not the size), whose text may be half-written;
 * `dangling` lists config files' links under a folder that lead nowhere (each also an error).
 */
export interface LoadedFiles extends LoadResult {
  readonly stamps: ReadonlyMap<string, string>;
  readonly torn: readonly string[];
  readonly dangling: readonly string[];
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
  const dangling: string[] = [];
  for (const path of paths) {
    let files: string[];
    try {
      files = await expand(path, dangling);
    } catch (err) {
      // A path named as a link that leads nowhere is said as the same links in a folder are.
      if ((await lstat(path).catch(() => undefined))?.isSymbolicLink() === true) dangling.push(path);
      else acc.problems.push({ severity: 'error', subject: path, path: '-', message: `cannot read: ${(err as Error).message}` });
      continue;
    }
    for (const file of files) {
      let bytes: Buffer;
      try {
        const before = await stat(file);
        if (before.size > MAX_CONFIG_FILE_BYTES) {
          stamps.set(file, fileStamp(before));
          acc.problems.push(tooLarge(file, before.size));
          continue;
        }
        bytes = await readBounded(file, MAX_CONFIG_FILE_BYTES);
        const afterStat = await stat(file);
        const after = fileStamp(afterStat);
        stamps.set(file, after);
        if (fileStamp(before) !== after || bytes.length !== afterStat.size) torn.push(file);
      } catch (err) {
        // Listed a moment ago and gone now: deleted (or being replaced) while read, not unreadable.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') torn.push(file);
        else acc.problems.push({ severity: 'error', subject: file, path: '-', message: `cannot read: ${(err as Error).message}` });
        continue;
      }
      if (bytes.length > MAX_CONFIG_FILE_BYTES) {
        // Grew past the bound while read: refused as is (a read that raced a writer is torn anyway).
        acc.problems.push(tooLarge(file, bytes.length));
        continue;
      }
      const text = utf8Text(bytes);
      if (typeof text !== 'string') {
        const where = text.offset === undefined ? undefined : locateByte(bytes, text.offset);
        acc.problems.push({
          severity: 'error',
          subject: where?.subject ?? (where === undefined ? file : documentLabel({ file, index: where.index })),
          path: where === undefined ? '-' : shownPath(where.segments, formatPath),
          message: text.message,
          source: { file, index: where?.index ?? 0, ...(text.line === undefined ? {} : { line: text.line }) },
        });
        continue;
      }
      parseInto(text, file, acc);
    }
  }
  const links = [...new Set(dangling)];
  for (const link of links) acc.problems.push(await danglingProblem(link));
  reportDuplicates(acc);
  return { ...acc, stamps, torn, dangling: links };
}

function tooLarge(file: string, size: number): Problem {
  return { severity: 'error', subject: file, path: '-', message: `is ${size} bytes, more than the ${MAX_CONFIG_FILE_BYTES} a configuration file may be (split it, or load a folder)`, source: { file, index: 0 } };
}

/** The file's bytes, at most `max` + 1 of them (one more tells a file over the bound). */
async function readBounded(file: string, max: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(1024 * 1024, max + 1 - total));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      chunks.push(bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead));
      total += bytesRead;
      if (total > max) break;
    }
    return Buffer.concat(chunks, total);
  } finally {
    await handle.close();
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The bytes as text, or why they are not UTF-8 (YAML and JSON in Kubernetes are UTF-8; decoding
 * another encoding as UTF-8 would replace its bytes and refuse, or worse serve, a mangled name).
 * A UTF-8 byte order mark is dropped.
 */
function utf8Text(bytes: Buffer): string | { message: string; line?: number; offset?: number } {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    return { message: 'is UTF-16 text; configuration files are read as UTF-8 (save it as UTF-8)', line: 1 };
  }
  try {
    return UTF8.decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    let line = 1;
    for (let i = 0; i < at; i++) if (bytes[i] === 0x0a) line++;
    const byte = bytes[at] ?? 0;
    return { message: `is not UTF-8 text: byte 0x${byte.toString(16).padStart(2, '0')} at offset ${at} does not start or continue a UTF-8 character (save the file as UTF-8)`, line, offset: at };
  }
}

const UTF8_LENIENT = new TextDecoder('utf-8');

/**
 * The document (index, `Kind/name`) and field a byte of a file that is not UTF-8 falls in: the
 * text is read with the bad bytes replaced, only to say where they are (never to load it).
 */
function locateByte(bytes: Buffer, at: number): { index: number; subject: string | undefined; segments: PropertyKey[] } | undefined {
  const offset = UTF8_LENIENT.decode(bytes.subarray(0, at)).length;
  let text = UTF8_LENIENT.decode(bytes);
  const deep = deepDocuments(text);
  for (const d of deep) {
    if (offset >= d.start && offset <= d.end) return { index: d.index, subject: d.subject, segments: [] };
    text = blankDocument(text, d.start, d.end);
  }
  try {
    const docs = parseAllDocuments(text);
    if (!Array.isArray(docs)) return undefined;
    const index = docs.findIndex((d) => offset >= d.range[0] && offset <= d.range[2]);
    const doc = docs[index];
    if (doc === undefined) return undefined;
    // A name with the bad byte in it is no name to find the resource by.
    const subject = documentSubject(doc);
    return { index, subject: subject?.includes('\ufffd') === true ? undefined : subject, segments: pathAt(doc, offset) };
  } catch {
    return undefined;
  }
}

/** Offset of the first byte that is not part of a well-formed UTF-8 sequence (RFC 3629). */
function firstInvalidUtf8(b: Buffer): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i] as number;
    let n: number;
    let min: number;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      min = 0x10000;
    } else {
      return i;
    }
    let cp = c & (0x3f >> n);
    for (let k = 1; k <= n; k++) {
      const cc = b[i + k];
      if (cc === undefined || (cc & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return b.length;
}
