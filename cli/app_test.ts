import assert from "node:assert/strict";
import { Command } from "commander";
import { type Context, registerCommands } from "./app.ts";

const ctx: Context = {
  host: () => {
    throw new Error("no Host in this test");
  },
  warn: () => {},
  options: () => ({}),
  exitCode: 0,
};

function subcommands(program: Command, name: string): number {
  return program.commands.find((c) => c.name() === name)?.commands.length ?? -1;
}

Deno.test("registerCommands() with no command word loads every command's real definition", async () => {
  const program = new Command("rkl");
  await registerCommands(program, ctx, undefined);
  for (const name of ["container", "pod", "image", "volume"]) {
    assert.ok(subcommands(program, name) > 0, `${name} is only a stub`);
  }
});

Deno.test("registerCommands() with a command word loads that module and stubs the rest", async () => {
  const program = new Command("rkl");
  await registerCommands(program, ctx, "pod");
  assert.ok(subcommands(program, "pod") > 0);
  assert.equal(subcommands(program, "container"), 0);
});
