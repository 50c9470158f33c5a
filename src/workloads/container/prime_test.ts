import assert from "node:assert/strict";
import { keepAttachPrimed } from "./conmon.ts";
import type { CgroupManager } from "../../sys/cgroups/mod.ts";

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("keepAttachPrimed(): primes again and again until stopped, then never again", async () => {
  const file = await Deno.makeTempFile({ prefix: "rkl-prime-" });
  try {
    const cgroups = { ownProcsFile: (c: string) => c === "0::/x\n" ? file : undefined };
    const primed = keepAttachPrimed(cgroups as unknown as CgroupManager, "0::/x\n");
    for (let i = 0; i < 3; i++) {
      // Emptied here, written again by the next prime.
      for (let t = 0; t < 200 && Deno.readTextFileSync(file) !== String(Deno.pid); t++) {
        await wait(2);
      }
      assert.equal(Deno.readTextFileSync(file), String(Deno.pid), `prime ${i + 1}`);
      Deno.writeTextFileSync(file, "");
    }
    primed.stop();
    await primed.done;
    Deno.writeTextFileSync(file, "");
    await wait(20);
    assert.equal(Deno.readTextFileSync(file), "", "nothing written once stopped");
  } finally {
    Deno.removeSync(file);
  }
});

Deno.test("keepAttachPrimed(): nothing at all without a cgroup.procs of its own (rootless, fakes)", async () => {
  const cgroups = { ownProcsFile: () => undefined };
  const primed = keepAttachPrimed(cgroups as unknown as CgroupManager, "0::/x\n");
  primed.stop();
  await primed.done;
  const none = keepAttachPrimed(cgroups as unknown as CgroupManager, undefined);
  none.stop();
  await none.done;
});
