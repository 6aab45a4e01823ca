import { Backoff } from './backoff.js';
import type { SourceLog } from '../source.js';
import { kubeErrorMessage, type KubeApi } from './kube-api.js';
import { parentKey, type DesiredStatus, type StatusTarget } from './status-conditions.js';
import { mergeParents } from './status-merge.js';

/** What became of one object's status write. */
export type WriteOutcome =
  /** Our entries changed and were written. */
  | 'written'
  /** What is there already says what we would write: nothing sent. */
  | 'unchanged'
  /** The object no longer exists. */
  | 'gone'
  /** The object is newer (a higher generation) than the view the status was computed from: the next view writes. */
  | 'stale'
  /** The Lease is not ours (any more): nothing sent. */
  | 'not-leader'
  /** Gave up after the bounded retries (logged). */
  | 'failed';

export interface StatusWriterOptions {
  readonly api: KubeApi;
  readonly log: SourceLog;
  /** Asked before every write: false (the Lease was lost) stops at once. */
  readonly mayWrite: () => boolean;
  /** Reads and writes per object before giving up. Default 5. */
  readonly maxAttempts?: number;
  /** First wait between attempts after a conflict or an error, in ms, doubled each time (with jitter). Default 100. */
  readonly backoffMs?: number;
  readonly now?: () => Date;
}

/** The status subresource of a target: `/apis/<group>/<version>/namespaces/<ns>/<plural>/<name>/status`. */
export function statusPath(target: StatusTarget): string {
  const plural = target.kind === 'InferencePool' ? 'inferencepools' : 'httproutes';
  return `/apis/${target.apiVersion}/namespaces/${encodeURIComponent(target.namespace)}/${plural}/${encodeURIComponent(target.name)}/status`;
}

/** InferencePool v1alpha2 names the list `parent` and has no `controllerName` (GIE api/v1alpha2 @v0.5.1). */
function isV1Alpha2Pool(target: StatusTarget): boolean {
  return target.kind === 'InferencePool' && target.apiVersion.endsWith('/v1alpha2');
}

/**
 * Writes our entries of an object's status through the status subresource with optimistic
 * concurrency: GET, merge (status-merge.ts: only our entries change), PUT with the
 * resourceVersion read. A 409 Conflict means someone wrote in between: read again and merge
 * again, so another controller's entries are never overwritten with a stale copy. A write is sent
 * only when our entries differ from what is there.
 */
export class StatusWriter {
  readonly #opts: StatusWriterOptions;
  /** v1alpha2 pools: the parentRef keys we wrote per object, so we may remove them later (no controllerName to tell). */
  readonly #written = new Map<string, Set<string>>();
  /** Objects found without a status subresource, already reported (once each). */
  readonly #noSubresource = new Set<string>();

  constructor(opts: StatusWriterOptions) {
    this.#opts = opts;
  }

  async write(desired: DesiredStatus): Promise<WriteOutcome> {
    const { api, log } = this.#opts;
    const path = statusPath(desired.target);
    const field = isV1Alpha2Pool(desired.target) ? 'parent' : 'parents';
    const objectKey = `${desired.target.kind}/${desired.target.namespace}/${desired.target.name}`;
    const attempts = this.#opts.maxAttempts ?? 5;
    const backoff = new Backoff(this.#opts.backoffMs ?? 100, Number.MAX_SAFE_INTEGER);
    let lastError = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1) await sleep(backoff.next());
      if (!this.#opts.mayWrite()) return 'not-leader';
      let read;
      try {
        read = await api.get(path);
      } catch (err) {
        lastError = errText(err);
        continue;
      }
      if (read.status === 404) {
        await this.#reportMissingSubresource(path, objectKey);
        return 'gone';
      }
      if (read.status !== 200 || !isRecord(read.body)) {
        lastError = kubeErrorMessage(read);
        if (isFinal(read.status)) break;
        continue;
      }
      const object = read.body;
      const metadata = isRecord(object['metadata']) ? object['metadata'] : {};
      const liveGeneration = typeof metadata['generation'] === 'number' ? metadata['generation'] : undefined;
      if (desired.target.generation !== undefined && liveGeneration !== undefined && liveGeneration > desired.target.generation) return 'stale';
      const status = isRecord(object['status']) ? object['status'] : {};
      const merged = mergeParents(status[field], desired, {
        objectNamespace: desired.target.namespace,
        now: (this.#opts.now?.() ?? new Date()).toISOString(),
        generation: desired.target.generation ?? liveGeneration,
        withControllerName: field === 'parents',
        ...(this.#written.has(objectKey) ? { extraOwnedKeys: this.#written.get(objectKey) } : {}),
      });
      if (merged.truncated > 0) log.warn({ object: objectKey, left: merged.truncated }, 'status parents full (32 entries): some of ours left out');
      if (!merged.changed) return 'unchanged';
      if (!this.#opts.mayWrite()) return 'not-leader';
      const body = { ...object, status: { ...status, [field]: merged.parents } };
      let put;
      try {
        put = await api.put(path, body);
      } catch (err) {
        lastError = errText(err);
        continue;
      }
      if (put.status === 200 || put.status === 201) {
        if (field === 'parent') this.#written.set(objectKey, new Set(desired.parents.map((p) => parentKey(p.parentRef, desired.target.namespace))));
        return 'written';
      }
      if (put.status === 404) return 'gone';
      // 409: written by someone else since our read; read and merge again.
      lastError = kubeErrorMessage(put);
      if (isFinal(put.status)) break;
    }
    log.warn({ object: objectKey, attempts, error: lastError }, 'status not written: giving up until the next change or resync');
    return 'failed';
  }

  /**
   * The status subresource answered 404. When the object itself exists, its CRD declares no
   * `subresources: status` (an old or hand-made CRD): nothing can be written, which a user should
   * hear once rather than find an empty status without a word.
   */
  async #reportMissingSubresource(path: string, objectKey: string): Promise<void> {
    if (this.#noSubresource.has(objectKey)) return;
    const object = await this.#opts.api.get(objectPath(path)).catch(() => undefined);
    if (object?.status !== 200) return;
    this.#noSubresource.add(objectKey);
    this.#opts.log.warn({ object: objectKey, path }, "status not written: the object exists but has no status subresource (its CRD lacks 'subresources: status'; install the CRD release docs/kubernetes.md names)");
  }
}

/** The object path a status path is the subresource of. */
function objectPath(statusPath: string): string {
  return statusPath.replace(/\/status$/, '');
}

/** Answers trying again cannot change (bad request, forbidden, invalid): 4xx other than 404, 409 and 429. */
function isFinal(status: number): boolean {
  return status >= 400 && status < 500 && status !== 404 && status !== 409 && status !== 429;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
