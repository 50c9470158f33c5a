/**
 * Named fault points, like containerd's failpoints: every fake of the
 * FakeHost counts its calls by operation name ("fs.mkdir", "sys.mount",
 * "runtime.delete", "cni.add", …) and asks here whether this one must fail.
 * A test first runs a create that succeeds, reads back the steps it made
 * (`steps()`), then runs it again once per step with that step failing.
 */

export interface FaultPoint {
  /** Operation name, e.g. "fs.mkdir". */
  op: string;
  /** 1-based: the nth call of `op` since the counts were last reset. */
  n: number;
  /** What it acted on (a path, an id), for messages. */
  detail: string;
  /** False for reads: they change nothing, so they are not steps. */
  mutates: boolean;
}

export class Faults {
  /** Every call seen, in order. */
  readonly seen: FaultPoint[] = [];
  /** The calls that were made to fail. */
  readonly fired: FaultPoint[] = [];
  #counts = new Map<string, number>();
  #plan = new Map<string, Set<number>>();

  /** Makes the `n`th call (1-based, counted from now on) of `op` fail. */
  failAt(op: string, n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`failAt(${op}, ${n}): n counts from 1`);
    const set = this.#plan.get(op) ?? new Set();
    set.add(n + (this.#counts.get(op) ?? 0));
    this.#plan.set(op, set);
  }

  /** Counts a call of `op`; true when it must fail (each planned failure fires once). */
  hit(op: string, detail: string, mutates = true): boolean {
    const n = (this.#counts.get(op) ?? 0) + 1;
    this.#counts.set(op, n);
    const point = { op, n, detail, mutates };
    this.seen.push(point);
    const plan = this.#plan.get(op);
    if (!plan?.has(n)) return false;
    plan.delete(n);
    this.fired.push(point);
    return true;
  }

  /** Failures planned that have not fired (a test that expected one to fire checks this). */
  pending(): string[] {
    const out: string[] = [];
    for (const [op, ns] of this.#plan) for (const n of ns) out.push(`${op}#${n}`);
    return out;
  }

  /** The calls that changed something, since `from` (an index into `seen`). */
  steps(from = 0): FaultPoint[] {
    return this.seen.slice(from).filter((p) => p.mutates);
  }

  /** Starts counting afresh (and forgets what was seen), so `failAt` counts from the next call. */
  reset(): void {
    this.#counts.clear();
    this.#plan.clear();
    this.seen.length = 0;
    this.fired.length = 0;
  }
}

/** The error an injected fault throws when the fake has no more specific one. */
export class InjectedFault extends Error {
  constructor(readonly point: string) {
    super(`Injected fault at ${point}`);
    this.name = "InjectedFault";
  }
}
