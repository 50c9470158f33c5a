/**
 * rkl's state: one JSON record per object, in plain files. Every record has a
 * `schemaVersion`; writes are atomic (temp file, fsync, rename, fsync dir);
 * mutations hold an exclusive lock so parallel rkl commands are safe.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { StoreError } from "../errors.ts";
import { type HostFs, realFs } from "../sys/fs.ts";

/** The store whose lock the current async task holds. */
const held = new AsyncLocalStorage<FsStore>();
const heldMemory = new AsyncLocalStorage<MemoryStore>();
import { DNS1123_LABEL } from "../base/names.ts";

export const SCHEMA_VERSION = 1;

/** How old a records directory's mtime must be before a scan of it is reused (see FsStore). */
export const RACY_MS = 50;

export type RecordKind = "containers" | "pods" | "compose";

export interface StoredRecord {
  schemaVersion: number;
  name: string;
}

/** Per kind: the reason a parsed record is unusable, or undefined when it is fine. */
export type RecordValidators = Partial<
  Record<RecordKind, (value: unknown, name: string) => string | undefined>
>;

/** A record that exists but cannot be used: unreadable, not JSON, or the wrong shape. */
export class DamagedRecordError extends StoreError {
  constructor(
    readonly kind: RecordKind,
    readonly recordName: string,
    readonly reason: string,
    readonly path: string,
  ) {
    super(`Record ${path} is damaged: ${reason}`, {
      hint: `rkl ${
        kind === "containers" ? "container" : kind === "pods" ? "pod" : "compose"
      } rm -f ${recordName} cleans up by what it finds on the host`,
    });
  }
}

/** A rename's new name is another record's. */
export class RecordExistsError extends StoreError {
  constructor(readonly kind: RecordKind, readonly recordName: string) {
    super(`A record named ${JSON.stringify(recordName)} exists`);
  }
}

export interface DamagedRecord {
  name: string;
  reason: string;
}

export interface StateStore {
  /** The record, undefined when there is none; throws DamagedRecordError when unusable. */
  get<T extends StoredRecord>(kind: RecordKind, name: string): T | undefined;
  /** Every usable record of a kind; damaged ones are left out (see `damaged`). */
  list<T extends StoredRecord>(kind: RecordKind): T[];
  /** Records of a kind that exist but cannot be used, with the reason. */
  damaged(kind: RecordKind): DamagedRecord[];
  /**
   * Writes the record whole (atomically). `durable: false` leaves out the
   * syncs (see writeAtomic): for a change whose loss in a power cut leaves a
   * record that is still right, as the one before it.
   */
  put<T extends StoredRecord>(
    kind: RecordKind,
    record: T,
    options?: { durable?: boolean },
  ): void;
  delete(kind: RecordKind, name: string): void;
  /**
   * Moves the record stored as `from` to `record.name`, with `record` as its
   * content: a record of the new name appears whole before the old one goes,
   * and RecordExistsError when the new name is taken (nothing changed). The
   * caller holds the lock (see withLock).
   */
  rename<T extends StoredRecord>(kind: RecordKind, from: string, record: T): void;
  /** Runs `fn` holding the store's exclusive lock. */
  withLock<T>(fn: () => Promise<T>): Promise<T>;
}

/** Record keys are names that went through validation; anything else is refused. */
export function checkRecordName(name: string, kind?: RecordKind): void {
  if (kind === "compose") {
    // Compose project names: [a-z0-9][a-z0-9_-]*, as docker compose normalises them.
    if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(name)) {
      throw new StoreError(`Cannot use ${JSON.stringify(name)} as a project name`);
    }
    return;
  }
  // A CRI object's id: 64 lowercase hex digits, as containerd and CRI-O make them.
  if (/^[0-9a-f]{64}$/.test(name)) return;
  // NAME, POD_CONTAINER, or POD__pause (the pod's pause container).
  const [first, ...rest] = name.split("_");
  const ok = DNS1123_LABEL.test(first) &&
    (rest.length === 0 || (rest.length === 1 && DNS1123_LABEL.test(rest[0])) ||
      (rest.length === 2 && rest[0] === "" && rest[1] === "pause"));
  if (!ok || name.length > 127) {
    throw new StoreError(`Cannot use ${JSON.stringify(name)} as a record name`);
  }
}

/**
 * The lock that keeps rkl processes apart: `acquire` resolves once the lock
 * at `path` is held and returns its release.
 */
export interface FileLock {
  acquire(path: string): Promise<() => void>;
}

/** flock(LOCK_EX) on the file, made if missing: released when closed or when the process dies. */
export const flockLock: FileLock = {
  async acquire(path: string): Promise<() => void> {
    const file = Deno.openSync(path, { read: true, write: true, create: true });
    try {
      await file.lock(true);
    } catch (e) {
      file.close();
      throw e;
    }
    return () => file.close();
  },
};

export interface FsStoreOptions {
  /** Where the records live (default: the real file system). */
  fs?: HostFs;
  /** How other processes are kept out (default: flock on `lockPath`). */
  lock?: FileLock;
}

export class FsStore implements StateStore {
  /** Tail of the in-process queue of lock holders. */
  #queue: Promise<void> = Promise.resolve();
  /**
   * The text of each record file that last passed the checks, by path. A
   * long-lived process (the daemon, the CRI's lists) reads the same records
   * over and over; an identical text needs no second check. Forgotten when
   * the record is deleted or its text fails.
   */
  #checked = new Map<string, string>();
  /**
   * Per kind, the last full scan's record texts (sorted by name) and damaged
   * entries, with the directory's identity at that scan (see `#dirKey`).
   * While the key is the same, no record was written, renamed in or removed,
   * by this process or any other: every write of a record is a rename into
   * the directory and every removal an unlink, and both move its mtime. A
   * list then costs one stat and a JSON.parse per record instead of a read
   * and a check of every file (20 containers: 0.31 → 0.06 ms).
   */
  #scans = new Map<RecordKind, { key: string; texts: string[]; damaged: DamagedRecord[] }>();
  /**
   * The kinds whose writes by this process are kept (see keepOwnWrites), and
   * per record path the last such write: its text, the file it was written
   * as, held open, and that file's identity (see pinKey). Oldest first.
   */
  #pinKinds = new Set<RecordKind>();
  #pins = new Map<string, { file: Deno.FsFile; key: string; text: string }>();

  readonly fs: HostFs;
  readonly #lock: FileLock;

  constructor(
    readonly recordsDir: string,
    readonly lockPath: string,
    readonly validators: RecordValidators = {},
    options: FsStoreOptions = {},
  ) {
    this.fs = options.fs ?? realFs;
    this.#lock = options.lock ?? flockLock;
  }

  #path(kind: RecordKind, name: string): string {
    checkRecordName(name, kind);
    return `${this.recordsDir}/${kind}/${name}.json`;
  }

  get<T extends StoredRecord>(kind: RecordKind, name: string): T | undefined {
    const path = this.#path(kind, name);
    const own = this.#ownText(path);
    if (own !== undefined) return JSON.parse(own) as T;
    let text: string;
    try {
      text = this.fs.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        this.#checked.delete(path);
        return undefined;
      }
      throw new DamagedRecordError(kind, name, (e as Error).message, path);
    }
    return this.#parse<T>(kind, name, path, text);
  }

  #parse<T extends StoredRecord>(kind: RecordKind, name: string, path: string, text: string): T {
    // The same bytes passed the checks before: a fresh object, unchecked.
    if (this.#checked.get(path) === text) return JSON.parse(text) as T;
    const reason = recordProblem(text, kind, name, this.validators);
    if (typeof reason === "string") {
      this.#checked.delete(path);
      throw new DamagedRecordError(kind, name, reason, path);
    }
    this.#checked.set(path, text);
    return reason as T;
  }

  /**
   * Keeps each record of `kind` this process writes from now on: its text,
   * and the file it was written as, held open (one file descriptor each, at
   * most MAX_PINS in all, the oldest let go first). While the record's path
   * still names that very file, unchanged, `get` and `ownText` answer from
   * memory after one stat(2) instead of reading and parsing the file.
   *
   * Why one stat proves it: every write of a record, by any rkl process, is
   * a new file renamed over the old one (writeAtomic), so a write by anyone
   * else leaves another inode at the path. The inode number alone would not
   * do, as the kernel reuses the number of a deleted file; but ours cannot be
   * freed, and so cannot be reused, while this process holds it open. The
   * stat also compares size and mtime (and ctime, to the second) for an edit
   * made in place, which rkl never makes (an editor's write of the same size
   * within the same clock tick as ours would pass). For the daemon, which
   * reads back the records it has just written (ContainerStatus right after
   * StartContainer; src/cri/server/status_cache.ts).
   */
  keepOwnWrites(kind: RecordKind): void {
    if (this.fs === realFs) this.#pinKinds.add(kind);
  }

  /**
   * The text of record `name` when its file is still the one this process
   * last wrote (see keepOwnWrites), else undefined. One stat(2).
   */
  ownText(kind: RecordKind, name: string): string | undefined {
    return this.#ownText(this.#path(kind, name));
  }

  #ownText(path: string): string | undefined {
    const pin = this.#pins.get(path);
    if (pin === undefined) return undefined;
    let key: string | undefined;
    try {
      key = pinKey(Deno.statSync(path));
    } catch { /* removed */ }
    if (key === pin.key) return pin.text;
    this.#unpin(path);
    return undefined;
  }

  #unpin(path: string): void {
    const pin = this.#pins.get(path);
    if (pin === undefined) return;
    this.#pins.delete(path);
    pin.file.close();
  }

  /**
   * The records directory's identity for the scan cache, or undefined when a
   * scan must read every file: not the real file system (an in-memory tree
   * keeps no such clock), or a directory changed within the last
   * RACY_MS. The kernel stamps mtime from a coarse clock (a tick of up to 10
   * ms), so a change made later in the same tick as the scan would leave
   * mtime as it was; once mtime is older than the margin, any later change
   * stamps a later time.
   */
  #dirKey(dir: string): string | undefined {
    if (this.fs !== realFs) return undefined;
    let st: Deno.FileInfo;
    try {
      st = Deno.statSync(dir);
    } catch {
      return undefined;
    }
    const mtime = st.mtime?.getTime();
    if (mtime === undefined || Date.now() - mtime < RACY_MS) return undefined;
    return `${st.dev}:${st.ino}:${mtime}:${st.size}:${st.nlink}`;
  }

  #scan<T extends StoredRecord>(kind: RecordKind): { ok: T[]; damaged: DamagedRecord[] } {
    const dir = `${this.recordsDir}/${kind}`;
    // Taken before the directory is read: a change made during the scan moves mtime past it.
    const key = this.#dirKey(dir);
    const cached = this.#scans.get(kind);
    if (key !== undefined && cached?.key === key) {
      return {
        ok: cached.texts.map((t) => JSON.parse(t) as T),
        damaged: cached.damaged.map((d) => ({ ...d })),
      };
    }
    this.#scans.delete(kind);
    const ok: T[] = [];
    const damaged: DamagedRecord[] = [];
    let entries: { name: string }[];
    try {
      entries = this.fs.readDir(dir);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return { ok, damaged };
      throw new StoreError(`Cannot list ${dir}`, { cause: e });
    }
    for (const e of entries) {
      if (!e.name.endsWith(".json")) continue; // temp files of an interrupted write
      const name = e.name.slice(0, -5);
      try {
        checkRecordName(name, kind);
      } catch {
        damaged.push({ name, reason: "not a record name rkl makes" });
        continue;
      }
      try {
        const rec = this.get<T>(kind, name);
        if (rec) ok.push(rec); // else removed between readDir and read
      } catch (err) {
        if (!(err instanceof DamagedRecordError)) throw err;
        damaged.push({ name, reason: err.reason });
      }
    }
    // Records another process removed are forgotten here too.
    const prefix = `${dir}/`;
    const listed = new Set(entries.map((e) => `${prefix}${e.name}`));
    for (const path of this.#checked.keys()) {
      if (path.startsWith(prefix) && !listed.has(path)) this.#checked.delete(path);
    }
    ok.sort((a, b) => a.name.localeCompare(b.name));
    damaged.sort((a, b) => a.name.localeCompare(b.name));
    if (key !== undefined) {
      // The texts that passed the checks, in the order of `ok`.
      const texts = ok.map((r) => this.#checked.get(`${prefix}${r.name}.json`));
      if (texts.every((t) => t !== undefined)) {
        this.#scans.set(kind, {
          key,
          texts: texts as string[],
          damaged: damaged.map((d) => ({ ...d })),
        });
      }
    }
    return { ok, damaged };
  }

  list<T extends StoredRecord>(kind: RecordKind): T[] {
    return this.#scan<T>(kind).ok;
  }

  damaged(kind: RecordKind): DamagedRecord[] {
    return this.#scan(kind).damaged;
  }

  put<T extends StoredRecord>(
    kind: RecordKind,
    record: T,
    options: { durable?: boolean } = {},
  ): void {
    const path = this.#path(kind, record.name);
    // Our own writes move the directory's mtime too; dropping the scan here
    // also covers one made within RACY_MS before it.
    this.#scans.delete(kind);
    const dir = `${this.recordsDir}/${kind}`;
    this.fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const text = JSON.stringify({ ...record, schemaVersion: SCHEMA_VERSION }, null, 2) + "\n";
    this.#unpin(path);
    const keep = this.#pinKinds.has(kind);
    const file = writeAtomic(path, text, this.fs, { ...options, keepOpen: keep });
    // Checked once here: the next read of these same bytes (a ContainerStatus
    // right after StartContainer's write) is not checked again. Other bytes
    // found there later (another process's write) are checked as read.
    if (typeof recordProblem(text, kind, record.name, this.validators) === "string") {
      this.#checked.delete(path);
      file?.close();
      return;
    }
    this.#checked.set(path, text);
    if (file === undefined) return;
    let key: string;
    try {
      // The file as it is after the rename (which moves its ctime).
      key = pinKey(file.statSync());
    } catch {
      file.close();
      return;
    }
    this.#pins.set(path, { file, key, text });
    if (this.#pins.size > MAX_PINS) this.#unpin(this.#pins.keys().next().value!);
  }

  delete(kind: RecordKind, name: string): void {
    this.#checked.delete(this.#path(kind, name));
    this.#unpin(this.#path(kind, name));
    this.#scans.delete(kind);
    try {
      this.fs.remove(this.#path(kind, name));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new StoreError(`Cannot delete record ${name}`, { cause: e });
      }
    }
  }

  rename<T extends StoredRecord>(kind: RecordKind, from: string, record: T): void {
    const src = this.#path(kind, from);
    const dst = this.#path(kind, record.name);
    if (src === dst) throw new RecordExistsError(kind, record.name);
    this.#scans.delete(kind);
    const text = JSON.stringify({ ...record, schemaVersion: SCHEMA_VERSION }, null, 2) + "\n";
    // The new content under a temp name (synced), then a hard link to the new
    // name: link() makes the name only if it is free, whole at once. Only
    // then does the old name go. A crash between the two leaves both, the
    // new one saying `renamedFrom`; gc removes the old one (gc.ts).
    const tmp = `${dst}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    writeAtomic(tmp, text, this.fs);
    try {
      this.fs.link(tmp, dst);
    } catch (e) {
      this.fs.remove(tmp);
      if (e instanceof Deno.errors.AlreadyExists) throw new RecordExistsError(kind, record.name);
      throw new StoreError(`Cannot rename record ${from} to ${record.name}`, { cause: e });
    }
    this.fs.remove(tmp);
    this.#checked.delete(src);
    this.#unpin(src);
    try {
      this.fs.remove(src);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new StoreError(`Cannot remove record ${from} after its rename`, { cause: e });
      }
    }
    syncDir(this.fs, dst);
  }

  async withLock<T>(fn: () => Promise<T>): Promise<T> {
    // Re-entrant for the task that holds it (nested calls), exclusive for
    // every other task, in this process (queue) and in others (flock).
    if (held.getStore() === this) return await fn();
    const previous = this.#queue;
    let release!: () => void;
    this.#queue = new Promise<void>((r) => release = r);
    await previous;
    let unlock: (() => void) | undefined;
    try {
      const dir = this.lockPath.slice(0, this.lockPath.lastIndexOf("/"));
      this.fs.mkdir(dir, { recursive: true, mode: 0o700 });
      unlock = await this.#lock.acquire(this.lockPath);
      return await held.run(this, fn);
    } finally {
      unlock?.();
      release();
    }
  }
}

/** At most this many records' files are held open by FsStore.keepOwnWrites. */
export const MAX_PINS = 1024;

/** A record file's identity for FsStore's kept writes: the inode, its size and times. */
function pinKey(st: Deno.FileInfo): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtime?.getTime()}:${st.ctime?.getTime()}`;
}

/** The parsed record, or why it cannot be used. */
export function recordProblem(
  text: string,
  kind: RecordKind,
  name: string,
  validators: RecordValidators,
): StoredRecord | string {
  if (text.trim() === "") return "empty file";
  let rec: unknown;
  try {
    rec = JSON.parse(text);
  } catch (e) {
    return `not JSON (${(e as Error).message})`;
  }
  if (typeof rec !== "object" || rec === null || Array.isArray(rec)) return "not a JSON object";
  const v = (rec as { schemaVersion?: unknown }).schemaVersion;
  if (v !== SCHEMA_VERSION) return `schema version ${v}, this rkl reads ${SCHEMA_VERSION}`;
  const problem = validators[kind]?.(rec, name);
  if (problem) return problem;
  return rec as StoredRecord;
}

/**
 * Writes `path` so that readers see the old or the new content, never a torn
 * one. On the real file system the temp file and the directory are synced;
 * another `fs` (an in-memory tree in tests) gets the same create, write and
 * rename, with nothing to sync.
 *
 * `durable: false` leaves out both syncs: the file is still whole or absent
 * for any process, also one that reads it after its writer was killed, but
 * not after a power loss. For files nothing reads after a reboot.
 *
 * `keepOpen` (the real file system only) returns the file written, open:
 * its inode is the one at `path` until something replaces it.
 */
export function writeAtomic(
  path: string,
  content: string | Uint8Array,
  fs = realFs,
  options: { durable?: boolean; keepOpen?: boolean } = {},
): Deno.FsFile | undefined {
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  if (fs !== realFs) {
    const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
    try {
      fs.writeFile(tmp, bytes, { createNew: true, mode: 0o600 });
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) {
        try {
          fs.remove(tmp);
        } catch { /* never made */ }
      }
      throw e;
    }
    renameOrDrop(fs, tmp, path);
    return undefined;
  }
  const f = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o600 });
  try {
    const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
    let off = 0;
    while (off < bytes.length) off += f.writeSync(bytes.subarray(off));
    if (options.durable !== false) f.syncSync();
  } catch (e) {
    f.close();
    Deno.removeSync(tmp);
    throw e;
  }
  if (!options.keepOpen) f.close();
  try {
    renameOrDrop(realFs, tmp, path);
    if (options.durable !== false) syncDir(realFs, path);
  } catch (e) {
    if (options.keepOpen) f.close();
    throw e;
  }
  // `keepOpen`: the file written, still open (its inode is the one now at `path`).
  return options.keepOpen ? f : undefined;
}

/** fsync of the directory holding `path` (the real file system only). */
function syncDir(fs: HostFs, path: string): void {
  if (fs !== realFs) return;
  const d = Deno.openSync(path.slice(0, path.lastIndexOf("/")) || "/", { read: true });
  try {
    d.syncSync();
  } finally {
    d.close();
  }
}

/** Renames the temp file into place; if that fails, the temp file goes, not to pile up. */
function renameOrDrop(fs: HostFs, tmp: string, path: string): void {
  try {
    fs.rename(tmp, path);
  } catch (e) {
    try {
      fs.remove(tmp);
    } catch { /* gone already */ }
    throw e;
  }
}

/** Keeps records in memory, for unit tests of the workloads. */
export class MemoryStore implements StateStore {
  readonly records = new Map<string, StoredRecord>();
  #queue: Promise<unknown> = Promise.resolve();

  get<T extends StoredRecord>(kind: RecordKind, name: string): T | undefined {
    const r = this.records.get(`${kind}/${name}`);
    return r ? structuredClone(r) as T : undefined;
  }
  list<T extends StoredRecord>(kind: RecordKind): T[] {
    return [...this.records.entries()].filter(([k]) => k.startsWith(`${kind}/`)).map(([, v]) =>
      structuredClone(v) as T
    ).sort((a, b) => a.name.localeCompare(b.name));
  }
  put<T extends StoredRecord>(kind: RecordKind, record: T): void {
    checkRecordName(record.name, kind);
    this.records.set(
      `${kind}/${record.name}`,
      structuredClone({ ...record, schemaVersion: SCHEMA_VERSION }),
    );
  }
  delete(kind: RecordKind, name: string): void {
    this.records.delete(`${kind}/${name}`);
  }
  rename<T extends StoredRecord>(kind: RecordKind, from: string, record: T): void {
    checkRecordName(from, kind);
    checkRecordName(record.name, kind);
    if (this.records.has(`${kind}/${record.name}`)) throw new RecordExistsError(kind, record.name);
    this.put(kind, record);
    this.records.delete(`${kind}/${from}`);
  }
  damaged(_kind: RecordKind): DamagedRecord[] {
    return [];
  }
  withLock<T>(fn: () => Promise<T>): Promise<T> {
    if (heldMemory.getStore() === this) return fn();
    const run = this.#queue.then(() => heldMemory.run(this, fn));
    this.#queue = run.catch(() => {});
    return run;
  }
}
