import assert from "node:assert/strict";
import { Command } from "commander";
import { type Context, registerCommands } from "./app.ts";
import { DIRECT_COMMANDS, plainArgv } from "./direct.ts";

const parse = (argv: string[]) => plainArgv(argv, DIRECT_COMMANDS);

Deno.test("plainArgv() takes the plain forms of pod run/create/rm and kube play/down", () => {
  assert.deepEqual(parse(["kube", "play", "--network", "n1", "f.yaml"]), {
    globals: {},
    flags: { network: "n1" },
    arg: "f.yaml",
    group: "kube",
    verb: "play",
  });
  assert.deepEqual(
    parse([
      "--root",
      "/r",
      "--run-root=/rr",
      "--debug",
      "p",
      "run",
      "f.yaml",
      "--configmap",
      "a",
      "--configmap=b",
      "--job-backoff=3",
    ]),
    {
      globals: { root: "/r", runRoot: "/rr", debug: true },
      flags: { configmap: ["a", "b"], jobBackoff: "3" },
      arg: "f.yaml",
      group: "pod",
      verb: "run",
    },
  );
  assert.deepEqual(parse(["pod", "delete", "-f", "web"])?.flags, { force: true });
  assert.deepEqual(parse(["pod", "rm", "web", "--force"])?.flags, { force: true });
  assert.equal(parse(["kube", "down", "f.yaml"])?.arg, "f.yaml");
  assert.equal(parse(["pod", "create", "f.yaml"])?.verb, "create");
});

Deno.test("plainArgv() leaves everything else to commander", () => {
  for (
    const argv of [
      [],
      ["pod"],
      ["pod", "list"],
      ["container", "run", "f.yaml"],
      ["kube", "play"], // no operand
      ["kube", "play", "a.yaml", "b.yaml"], // two
      ["kube", "play", "--help"],
      ["kube", "play", "-h", "f.yaml"],
      ["kube", "play", "--", "f.yaml"],
      ["kube", "play", "--network"], // a value missing
      ["kube", "play", "--network", "--configmap", "f.yaml"], // a flag as a value
      ["kube", "play", "--nope", "f.yaml"],
      ["pod", "rm", "-fq", "web"],
      ["pod", "rm", "--force=yes", "web"],
      ["pod", "rm", "-f"],
      ["--root", "pod", "rm", "x"],
      ["--root"],
      ["--version"],
      ["kube", "constructor", "f"],
      ["toString", "play", "f"],
      ["kube", "play", "--toString", "f"],
    ]
  ) assert.equal(parse(argv), undefined, JSON.stringify(argv));
});

const ctx: Context = {
  host: () => {
    throw new Error("no Host in this test");
  },
  warn: () => {},
  options: () => ({}),
  exitCode: 0,
};

Deno.test("the direct commands' flags are exactly the flags commander defines for them", async () => {
  // A flag added to the commander definition and not here would send that command to
  // commander only when used; one here and not there would be taken without commander's
  // checks: both are caught here.
  for (const [group, verbs] of Object.entries(DIRECT_COMMANDS)) {
    const program = new Command("rkl");
    await registerCommands(program, ctx, group);
    const g = program.commands.find((c) => c.name() === group)!;
    for (const [verb, flags] of Object.entries(verbs)) {
      const c = g.commands.find((c) => c.name() === verb)!;
      assert.ok(c, `${group} ${verb}`);
      const theirs = c.options.flatMap((o) => [o.long, o.short]).filter((f) => f !== undefined)
        .sort();
      assert.deepEqual(Object.keys(flags).sort(), theirs, `${group} ${verb}`);
      for (const o of c.options) {
        const mine = flags[o.long as keyof typeof flags] as { key: string; value: boolean };
        assert.equal(mine.key, o.attributeName(), `${group} ${verb} ${o.long}`);
        assert.equal(mine.value, o.required || o.optional, `${group} ${verb} ${o.long}`);
        // runDirect's defaults: rkl0, no configmaps, the rest unset.
        const defaults: Record<string, unknown> = { network: "rkl0", configmap: [] };
        assert.deepEqual(o.defaultValue, defaults[mine.key], `${group} ${verb} ${o.long}`);
      }
      assert.equal(c.registeredArguments.length, 1, `${group} ${verb}: one operand`);
    }
  }
});
