/**
 * ContainerStatus's answers kept in memory, as containerd answers from its
 * own: the bench and the kubelet ask for a container's status right after
 * StartContainer, and reading the record back, checking its process and
 * its exit file and encoding the answer were all of rkl's own 0.25 ms there.
 *
 * An answer is kept only when made from a record this process wrote itself
 * (FsStore.keepOwnWrites: the store holds that file open and names its
 * text), and it is given again only while both of these hold:
 * - the record's path still names that very file, unchanged: one stat(2)
 *   (FsStore.ownText). Any write of the record, by this process or another
 *   rkl on the same root (a CLI's stop, rm, update), is a new file renamed
 *   over it, and the answer is made anew from what is there then;
 * - for a running container, its process has not ended: a pidfd of it
 *   (src/cri/server/pidfds.ts), opened when the answer is kept and checked
 *   against the record's start time then, asked by one poll(2) per call. A
 *   pidfd turns readable as the process exits (a zombie too), before conmon
 *   has reaped it and written its exit code: the call that sees it waits
 *   for conmon's exit file (see `settle`) so that its answer already says
 *   exited, with the code.
 * A created container (nothing launched yet: `deferred`) changes only by a
 * write of its record; an exited one's answer is final once its exit code
 * is known (conmon writes the exit file once). Anything else (a container
 * being created, in an unknown state, running with no process known, a
 * verbose request) is answered anew every time. Nothing is kept for a store
 * that is not on the real file system or without pidfds (no FFI).
 */
import type { Host } from "../../workloads/host.ts";
import { FsStore } from "../../store/store.ts";
import { realFs } from "../../sys/fs.ts";
import type { ContainerRecord } from "../../workloads/container.ts";
import { encodedAs, type Message } from "../grpc.ts";
import { isCri } from "../metadata.ts";
import { pathExists, type PidWatch, stillAlive, watchPids } from "./pidfds.ts";

interface Entry {
  /** The record's text the answer was made from. */
  text: string;
  /** The running container's process ([pid, start time]); undefined when nothing runs. */
  proc?: [number, number];
  /**
   * Its pidfd: opened at the first reuse (or by `warm`); null when pidfds
   * cannot be had (no FFI), and /proc/PID/stat is read on each reuse instead.
   */
  watch?: PidWatch | null;
  answer: Message;
}

/** At most this many answers are kept (the oldest go first). */
export const MAX_STATUSES = 512;

/** How long a call that saw the process end waits for conmon's exit file. */
export const SETTLE_MS = 2_000;

/** What `answer` found: a kept answer, nothing kept, or a watched process that ended. */
export type Lookup = { answer: Message } | { ended: boolean };

export class StatusCache {
  readonly #entries = new Map<string, Entry>();
  readonly #store: FsStore | undefined;
  hits = 0;

  constructor(
    host: Host,
    readonly watch: (procs: [number, number][]) => PidWatch | undefined = watchPids,
    readonly probe: (pid: number) => { state: string; startTime: number } | undefined = (pid) =>
      host.proc.stat(pid),
  ) {
    const s = host.store;
    this.#store = s instanceof FsStore && s.fs === realFs ? s : undefined;
    this.#store?.keepOwnWrites("containers");
  }

  /**
   * The text of container `id`'s record when the file there is the one this
   * process last wrote (one stat), else undefined: what a kept answer must
   * be made from. Taken before the record is read.
   */
  version(id: string): string | undefined {
    if (this.#store === undefined || !/^[0-9a-f]{64}$/.test(id)) return undefined;
    return this.#store.ownText("containers", id);
  }

  /** The kept answer for `id` while it holds; `ended` when its process was seen to end. */
  answer(id: string): Lookup {
    const e = this.#entries.get(id);
    if (e === undefined) return { ended: false };
    if (this.version(id) === e.text) {
      if (e.proc === undefined || stillAlive(e, [e.proc], this.watch, this.probe)) {
        this.hits++;
        return { answer: e.answer };
      }
      this.drop(id);
      return { ended: true };
    }
    this.drop(id);
    return { ended: false };
  }

  /**
   * Keeps `answer` (ContainerStatus's, not verbose) when it may be: `c` is
   * the record read as `text` (a `version` taken before the read) and then
   * brought up to date, `was` its status and pid as read. Returns the
   * answer to send (encoded once, when kept). `eager` opens a running
   * container's pidfd now (and keeps nothing when it cannot), for an answer
   * made from the record alone (`warm`), not checked against the process.
   */
  keep(
    id: string,
    text: string | undefined,
    was: Pick<ContainerRecord, "status" | "pid">,
    c: ContainerRecord,
    answer: Message,
    eager = false,
  ): Message {
    if (text === undefined || !isCri(c) || c.removing) return answer;
    let proc: [number, number] | undefined;
    let watch: PidWatch | undefined;
    if (c.status === "running") {
      // Only as the record says it: a status the runtime was asked for is not kept.
      if (was.status !== "running" || was.pid !== c.pid || c.deferred) return answer;
      if (c.pid === undefined || c.pidStart === undefined) return answer;
      proc = [c.pid, c.pidStart];
      if (eager) {
        watch = this.watch([proc]);
        if (watch === undefined) return answer; // not the record's process, or no pidfds
      }
    } else if (c.status === "created") {
      if (!c.deferred || was.status !== "created") return answer;
    } else if (c.status !== "exited" || c.exitCode === undefined) {
      return answer;
    }
    // Still the file `text` came from: the record read was that text.
    if (this.version(id) !== text) {
      watch?.close();
      return answer;
    }
    this.drop(id);
    if (this.#entries.size >= MAX_STATUSES) this.#sweep();
    if (this.#entries.size >= MAX_STATUSES) this.drop(this.#entries.keys().next().value!);
    const frozen = encodedAs("ContainerStatusResponse", answer);
    this.#entries.set(id, { text, proc, watch, answer: frozen });
    return frozen;
  }

  /** Drops the answers whose records changed or went (removed by a sandbox's removal, say). */
  #sweep(): void {
    for (const [id, e] of [...this.#entries]) if (this.version(id) !== e.text) this.drop(id);
  }

  drop(id: string): void {
    this.#entries.get(id)?.watch?.close();
    this.#entries.delete(id);
  }

  /** Lets go of every kept answer and its pidfd. */
  clear(): void {
    for (const id of [...this.#entries.keys()]) this.drop(id);
  }

  get size(): number {
    return this.#entries.size;
  }
}

/**
 * After `c`'s process was seen to end: until conmon has written its exit
 * file, while conmon (its pid file's process) still runs, at most
 * SETTLE_MS. conmon reaps the process and writes the code at once; without
 * this wait a status asked in between would say exited with no code (or ask
 * the runtime, which may still call it running).
 */
export async function settle(
  host: Pick<Host, "proc" | "fs">,
  c: Pick<ContainerRecord, "id" | "dirs">,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  now: () => number = Date.now,
): Promise<void> {
  const exitFile = `${c.dirs.exitDir}/${c.id}`;
  const written = () => {
    const e = pathExists(exitFile);
    if (e !== undefined) return e;
    try {
      host.fs.stat(exitFile);
      return true;
    } catch {
      return false;
    }
  };
  let pid: number | undefined;
  try {
    pid = Number(host.fs.readTextFile(`${c.dirs.conmonDir}/conmon.pid`).trim());
  } catch { /* no conmon known: nothing to wait for */ }
  if (!pid || !Number.isInteger(pid) || pid <= 1) return;
  const conmon = host.proc.stat(pid);
  if (conmon === undefined) return;
  const deadline = now() + SETTLE_MS;
  while (!written() && now() < deadline) {
    const s = host.proc.stat(pid);
    if (s === undefined || s.state === "Z" || s.startTime !== conmon.startTime) return;
    await sleep(1);
  }
}
