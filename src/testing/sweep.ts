/**
 * Fault sweeps on a FakeHost: run a create that succeeds and count the steps
 * it makes (each call of a fake that changes something), then run it again
 * once per step with that step failing, and check that
 *
 * - the failed create throws, and its error (or a cause of it) is the fault;
 * - what it leaves equals what was there before (nothing half-created);
 * - a teardown after the successful create leaves exactly what was there
 *   before: what the create made is gone, and nothing else (an unrelated
 *   object set up first) went with it;
 * - with `teardownSweep`, each step of that teardown failing in turn leaves
 *   a teardown that throws, and a second one (`rm -f` again) finishes it.
 *
 * With `downAfterFailedCreate` (compose up, which like docker compose keeps
 * the services that came up before the failing one), a failed create may
 * leave whole objects but no half-made one (no record still "creating"),
 * and its teardown must then leave what was there before.
 *
 * A fault the create survives (a best-effort step: it caught the error) is
 * no failure when the create then works and its teardown still leaves the
 * host as it was; `tolerated` lists those.
 */
import { diffSnapshots, FakeHost, type FakeHostOptions } from "./fake_host.ts";
import type { FaultPoint } from "./faults.ts";

export interface Scenario {
  /** Makes what must be there before the create (a bundle, an unrelated container). */
  setup(host: FakeHost): Promise<void> | void;
  create(host: FakeHost): Promise<unknown>;
  teardown(host: FakeHost): Promise<unknown>;
  host?: FakeHostOptions;
}

export interface SweepResult {
  /** The steps of the create that succeeded, in order. */
  steps: FaultPoint[];
  /** The steps of its teardown. */
  teardownSteps: FaultPoint[];
  /** What the create made (snapshot diff), for a look. */
  made: string[];
  /** Steps whose failure the create survived (and undid correctly at teardown). */
  tolerated: string[];
  /** Steps whose failure the teardown survived. */
  teardownTolerated: string[];
  /** Everything that went wrong; empty when the sweep passed. */
  problems: string[];
  /** Milliseconds the whole sweep took. */
  ms: number;
}

const name = (p: FaultPoint) => `${p.op}#${p.n} (${p.detail})`;

/** The error and its causes, outermost first. */
function chain(e: unknown): Error[] {
  const out: Error[] = [];
  for (let c = e; c instanceof Error && out.length < 10; c = c.cause) out.push(c);
  return out;
}

/** True when `e` or one of its causes is the error the fault threw. */
function fromFault(e: unknown): boolean {
  return chain(e).some((c) =>
    /injected fault|Input\/output error|: EIO\b|Cannot .*: (EIO|I\/O error)/i.test(c.message) ||
    (c as { errno?: number }).errno === 5
  );
}

async function fresh(s: Scenario): Promise<FakeHost> {
  const host = new FakeHost(s.host);
  await s.setup(host);
  host.faults.reset();
  return host;
}

export async function sweep(
  s: Scenario,
  options: { teardownSweep?: boolean; downAfterFailedCreate?: boolean } = {},
): Promise<SweepResult> {
  const t0 = performance.now();
  const problems: string[] = [];
  const tolerated: string[] = [];
  const teardownTolerated: string[] = [];

  // The run that works: its steps, and its teardown.
  const host = await fresh(s);
  const before = host.snapshot();
  await s.create(host);
  const steps = host.faults.steps();
  const made = diffSnapshots(before, host.snapshot());
  if (made.length === 0) problems.push("the create made nothing");
  host.faults.reset(); // the teardown's steps count from its start, as in the runs below
  await s.teardown(host);
  const teardownSteps = host.faults.steps();
  for (const d of diffSnapshots(before, host.snapshot())) problems.push(`after teardown: ${d}`);

  for (const step of steps) {
    const h = await fresh(s);
    const was = h.snapshot();
    h.failAt(step.op, step.n);
    let threw: unknown;
    try {
      await s.create(h);
    } catch (e) {
      threw = e;
    }
    if (h.faults.pending().length > 0) {
      problems.push(`${name(step)}: not reached (the create went another way)`);
      continue;
    }
    if (threw === undefined) {
      // Survived: the step was best effort. Its teardown must still clean up.
      tolerated.push(name(step));
      await s.teardown(h);
      for (const d of diffSnapshots(was, h.snapshot())) {
        problems.push(`${name(step)} (tolerated), after teardown: ${d}`);
      }
      continue;
    }
    if (!fromFault(threw)) {
      problems.push(`${name(step)}: threw something else: ${(threw as Error).message}`);
    }
    const msg = (threw as Error).message ?? "";
    if (msg.trim() === "" || msg.includes("\n")) {
      problems.push(`${name(step)}: the error is not one clear line: ${JSON.stringify(msg)}`);
    }
    if (!options.downAfterFailedCreate) {
      for (const d of diffSnapshots(was, h.snapshot())) problems.push(`${name(step)}: left ${d}`);
      continue;
    }
    for (const d of diffSnapshots(was, h.snapshot())) {
      if (/^\+ records \S+ creating$/.test(d)) problems.push(`${name(step)}: left half-made ${d}`);
    }
    try {
      await s.teardown(h);
    } catch (e) {
      problems.push(`${name(step)}: the teardown after it failed: ${(e as Error).message}`);
    }
    for (const d of diffSnapshots(was, h.snapshot())) {
      problems.push(`${name(step)}, after teardown: left ${d}`);
    }
  }

  if (options.teardownSweep) {
    for (const step of teardownSteps) {
      const h = await fresh(s);
      const was = h.snapshot();
      await s.create(h);
      h.faults.reset();
      h.failAt(step.op, step.n);
      let threw: unknown;
      try {
        await s.teardown(h);
      } catch (e) {
        threw = e;
      }
      if (h.faults.pending().length > 0) {
        problems.push(`teardown ${name(step)}: not reached`);
        continue;
      }
      if (threw === undefined) teardownTolerated.push(name(step));
      else {
        try {
          await s.teardown(h); // rm -f, again
        } catch (e) {
          problems.push(
            `teardown ${name(step)}: the second teardown failed: ${(e as Error).message}`,
          );
        }
      }
      for (const d of diffSnapshots(was, h.snapshot())) {
        problems.push(`teardown ${name(step)}: left ${d}`);
      }
    }
  }
  return {
    steps,
    teardownSteps,
    made,
    tolerated,
    teardownTolerated,
    problems,
    ms: Math.round(performance.now() - t0),
  };
}
