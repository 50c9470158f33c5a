/**
 * The host-wide network side of a FakeHost:
 *
 * - {@linkcode FakeHostLock}: the /run/lock flocks (net/hostnet.ts
 *   `HostLock`) as a table of held locks, shared or alone, each acquisition
 *   a step a test can fail ("lock.hold"). A hold that must wait waits, as
 *   flock(2) on a second fd of the same process does.
 * - {@linkcode FakeLinks}: bridges as the kernel shows them in
 *   /sys/class/net on the MemFs (`BR/brif/PORT`), made by the fake bridge
 *   plugin's ADD, a port dropped by its DEL, the bridge deleted by
 *   `ip link delete BR type bridge` (answered here).
 */
import type { HostLock } from "../net/hostnet.ts";
import type { CommandResult, RecordedCommand } from "../sys/command.ts";
import type { Faults } from "./faults.ts";
import { fsError, type MemFs } from "./mem_fs.ts";

interface Held {
  shared: number;
  exclusive: boolean;
  waiting: (() => void)[];
}

export class FakeHostLock implements HostLock {
  readonly #held = new Map<string, Held>();

  constructor(private readonly faults: Faults) {}

  async hold<T>(path: string, exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    // Opening the lock file is what fails on a real host (EACCES, EIO on /run/lock).
    if (this.faults.hit("lock.hold", `${path} ${exclusive ? "alone" : "shared"}`)) {
      throw fsError(5, "open", path);
    }
    const h = this.#held.get(path) ?? { shared: 0, exclusive: false, waiting: [] };
    this.#held.set(path, h);
    while (h.exclusive || (exclusive && h.shared > 0)) {
      await new Promise<void>((resolve) => h.waiting.push(resolve));
    }
    if (exclusive) h.exclusive = true;
    else h.shared++;
    try {
      return await fn();
    } finally {
      if (exclusive) h.exclusive = false;
      else h.shared--;
      for (const w of h.waiting.splice(0)) w();
      if (!h.exclusive && h.shared === 0 && h.waiting.length === 0) this.#held.delete(path);
    }
  }

  /** `path alone|shared×N` of each lock held, for a snapshot (empty between operations). */
  list(): string[] {
    return [...this.#held].filter(([, h]) => h.exclusive || h.shared > 0).map(([p, h]) =>
      `${p} ${h.exclusive ? "alone" : `shared x${h.shared}`}`
    ).sort();
  }
}

export const SYS_CLASS_NET = "/sys/class/net";
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

export class FakeLinks {
  constructor(private readonly fs: MemFs) {}

  /**
   * The bridge plugin's ADD: the bridge, made on first use (with its `bridge`
   * dir, as sysfs has one for a bridge), and a veth attached to it.
   */
  attach(bridge: string, port: string): void {
    this.fs.quietly(() => {
      this.fs.mkdir(`${SYS_CLASS_NET}/${bridge}/bridge`, { recursive: true });
      this.fs.mkdir(`${SYS_CLASS_NET}/${bridge}/brif`, { recursive: true });
      this.fs.writeTextFile(`${SYS_CLASS_NET}/${bridge}/brif/${port}`, "");
    });
  }

  /** Its DEL: the veth goes (the bridge stays, as the real plugin leaves it). */
  detach(bridge: string, port: string): void {
    this.fs.quietly(() => {
      if (this.fs.exists(`${SYS_CLASS_NET}/${bridge}/brif/${port}`)) {
        this.fs.remove(`${SYS_CLASS_NET}/${bridge}/brif/${port}`);
      }
    });
  }

  /** `ip link delete BR type bridge` (and other `ip` calls, which change nothing here). */
  answer(c: RecordedCommand): CommandResult | undefined {
    const base = c.cmd.slice(c.cmd.lastIndexOf("/") + 1);
    const a = c.args;
    if (base !== "ip" || a[0] !== "link" || a[1] !== "delete") return undefined;
    const dev = a[2] ?? "";
    if (!IFNAME.test(dev) || !this.fs.quietly(() => this.fs.exists(`${SYS_CLASS_NET}/${dev}`))) {
      return { code: 1, stdout: "", stderr: `Cannot find device "${dev}"\n` };
    }
    this.fs.quietly(() => this.fs.remove(`${SYS_CLASS_NET}/${dev}`, { recursive: true }));
    return { code: 0, stdout: "", stderr: "" };
  }
}
