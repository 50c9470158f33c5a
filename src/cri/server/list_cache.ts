/**
 * ListContainers' and ListPodSandbox's answers, kept encoded while nothing
 * they show can have changed. A kubelet (and crictl, and critest) lists far
 * more often than anything changes, and with 20 containers reading and
 * answering the records is most of a list's time in the daemon (0.48 ms of
 * records and process checks and 0.25 ms of protobuf encoding, against
 * 0.64 ms for a whole Version call, here).
 *
 * An answer is reused only while each of these is as it was when it was made:
 * - the records directory it was read from (a record is written by a rename
 *   into it and removed by an unlink, both of which move its mtime; the
 *   same identity as FsStore's scan cache, with the same margin: a directory
 *   changed within RACY_MS is never trusted, as the kernel stamps mtime from
 *   a coarse clock);
 * - ListContainers: each exit directory of the listed containers (conmon
 *   writes a container's exit file there when it ends), and each process a
 *   running container was found alive by (same start time, not a zombie),
 *   checked again on every list (one poll(2) over pidfds of them all, or
 *   /proc/PID/stat each without FFI): a container whose conmon was killed
 *   has no exit file written, and its end is seen by that check alone.
 * An answer with a container in an unknown state, or running with no
 * process known, is not kept. Nothing is kept for a store that is not on
 * the real file system (the unit tests' in-memory store).
 */
import type { Host } from "../../workloads/host.ts";
import { FsStore, RACY_MS } from "../../store/store.ts";
import { realFs } from "../../sys/fs.ts";
import { procStat } from "../../sys/procstat.ts";
import type { ContainerRecord } from "../../workloads/container.ts";
import { encodedAs, type Message } from "../grpc.ts";
import { type PidWatch, stillAlive, watchPids } from "./pidfds.ts";

/** A directory's identity, or undefined when it cannot be trusted (missing, or changed just now). */
export function dirKey(dir: string, now = Date.now()): string | undefined {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(dir);
  } catch {
    return undefined;
  }
  const mtime = st.mtime?.getTime();
  if (mtime === undefined || now - mtime < RACY_MS) return undefined;
  return `${st.dev}:${st.ino}:${mtime}:${st.size}:${st.nlink}`;
}

interface Entry {
  records: string;
  exitDirs: [string, string][];
  alive: [number, number][];
  /**
   * The processes of `alive` as pidfds, polled at once (src/cri/server/pidfds.ts):
   * opened at the first reuse, not when the answer is made, so a list made
   * anew pays no more than before.
   */
  watch?: PidWatch | null;
  answer: Message;
}

/** At most this many filters' answers are kept (a kubelet uses two or three). */
const MAX_ENTRIES = 16;

export class ListCache {
  readonly #entries = new Map<string, Entry>();
  readonly #dir: string | undefined;
  hits = 0;

  constructor(
    host: Host,
    readonly kind: "pods" | "containers",
    readonly responseType: string,
    readonly probe: (pid: number) => { state: string; startTime: number } | undefined = procStat,
    readonly watch: (procs: [number, number][]) => PidWatch | undefined = watchPids,
  ) {
    const store = host.store;
    this.#dir = store instanceof FsStore && store.fs === realFs
      ? `${store.recordsDir}/${kind}`
      : undefined;
  }

  /**
   * The kept answer for `filter`, or `make`'s (kept when it can be). `make`
   * returns the answer and the containers it shows, refreshed (ListContainers).
   */
  async answer(
    filter: Message,
    make: () => Promise<{ answer: Message; containers?: ContainerRecord[] }>,
  ): Promise<Message> {
    if (this.#dir === undefined) return (await make()).answer;
    const key = JSON.stringify(filter);
    // Taken before the records are read: a change made meanwhile moves it.
    const records = dirKey(this.#dir);
    const kept = this.#entries.get(key);
    if (records !== undefined && kept?.records === records && this.#valid(kept)) {
      this.hits++;
      return kept.answer;
    }
    this.#drop(key);
    const exitsBefore = new Map<string, string | undefined>();
    const { answer, containers } = await make();
    if (records === undefined) return answer;
    const alive: [number, number][] = [];
    for (const c of containers ?? []) {
      if (!exitsBefore.has(c.dirs.exitDir)) exitsBefore.set(c.dirs.exitDir, undefined);
      if (c.status === "exited" || c.status === "creating" || c.deferred) continue;
      if (c.status !== "running" && c.status !== "created") return answer; // unknown: ask again
      if (c.pid === undefined || c.pidStart === undefined) return answer;
      alive.push([c.pid, c.pidStart]);
    }
    // The exit dirs' identities, taken now: an exit file written since the
    // list was read moves them, and is seen once the answer is checked again
    // (the processes' check catches what ended in between).
    const exitDirs: [string, string][] = [];
    for (const dir of exitsBefore.keys()) {
      const k = dirKey(dir);
      if (k === undefined) return answer;
      exitDirs.push([dir, k]);
    }
    if (dirKey(this.#dir) !== records) return answer; // changed while answering
    if (this.#entries.size >= MAX_ENTRIES) {
      for (const k of [...this.#entries.keys()]) this.#drop(k);
    }
    const frozen = encodedAs(this.responseType, answer);
    this.#entries.set(key, { records, exitDirs, alive, answer: frozen });
    return frozen;
  }

  #drop(key: string): void {
    this.#entries.get(key)?.watch?.close();
    this.#entries.delete(key);
  }

  #valid(e: Entry): boolean {
    for (const [dir, k] of e.exitDirs) if (dirKey(dir) !== k) return false;
    return stillAlive(e, e.alive, this.watch, this.probe);
  }
}
