/**
 * The CLI's self-description: completion scripts that a real bash loads and
 * answers with, and `rkl version`'s JSON.
 */
import assert from "node:assert/strict";

const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;

async function rkl(args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  return new TextDecoder().decode(r.stdout);
}

/** What bash offers for the words typed so far (the last one being completed). */
async function complete(script: string, words: string[]): Promise<string[]> {
  const probe = `${script}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")})
COMP_CWORD=${words.length - 1}
_rkl
printf '%s\\n' "\${COMPREPLY[@]}"
`;
  const r = await new Deno.Command("bash", {
    args: ["-c", probe],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  return new TextDecoder().decode(r.stdout).split("\n").filter(Boolean).sort();
}

Deno.test("bash completion offers subcommands, aliases' subcommands, flags and names", async () => {
  const script = await rkl(["completion", "bash"]);
  assert.deepEqual(await complete(script, ["rkl", "co"]), ["completion", "compose", "container"]);
  assert.deepEqual(await complete(script, ["rkl", "c", "ex"]), ["exec"]);
  assert.deepEqual(await complete(script, ["rkl", "pod", "run", "--net"]), ["--network"]);
  // Names come from the store at completion time.
  const dir = await Deno.makeTempDir();
  const env = { RKL_ROOT: `${dir}/root`, RKL_RUN_ROOT: `${dir}/run`, RKL_CGROUP_PARENT: "rklcomp" };
  const self = `${Deno.execPath()} run -A --quiet ${MAIN}`;
  const withRoot = script.replaceAll(
    "rkl __complete",
    `RKL_ROOT=${env.RKL_ROOT} RKL_RUN_ROOT=${env.RKL_RUN_ROOT} RKL_CGROUP_PARENT=rklcomp ${self} __complete`,
  );
  try {
    assert.deepEqual(await complete(withRoot, ["rkl", "container", "rm", "comp"]), []);
    await Deno.writeTextFile(
      `${dir}/c.yaml`,
      `name: completion-demo\nimage: ${
        new URL("../../bundles/busybox", import.meta.url).pathname
      }\nargs: [sleep, "60"]\n`,
    );
    await rkl(["container", "create", "--network", "none", `${dir}/c.yaml`], env);
    assert.deepEqual(await complete(withRoot, ["rkl", "container", "rm", "comp"]), [
      "completion-demo",
    ]);
    assert.deepEqual(await complete(withRoot, ["rkl", "c", "state", "comp"]), ["completion-demo"]);
  } finally {
    await rkl(["container", "rm", "-f", "completion-demo"], env).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
  const fish = await rkl(["completion", "fish"]);
  assert.match(
    fish,
    /complete -c rkl -n '__fish_seen_subcommand_from rm' -a '\(rkl __complete containers 2>\/dev\/null\)'/,
  );
  assert.match(await rkl(["completion", "zsh"]), /^#compdef rkl\n/);
});

Deno.test("rkl version -o json names rkl's commit and Deno's version", async () => {
  const v = JSON.parse(await rkl(["version", "-o", "json"]));
  assert.equal(v.rkl.version, "0.1.0");
  assert.match(v.rkl.commit, /^[0-9a-f]{7,}/);
  assert.equal(v.deno.deno, Deno.version.deno);
});

Deno.test("the lazy command table matches what each command module registers", async () => {
  const { Command } = await import("commander");
  const { COMMANDS, registerCommands } = await import("../../cli/app.ts");
  const ctx = {
    host: () => {
      throw new Error("no host in this test");
    },
    warn: () => {},
    options: () => ({}),
    exitCode: 0,
  };
  const shape = (p: InstanceType<typeof Command>) =>
    p.commands.map((c) => ({
      name: c.name(),
      alias: c.alias(),
      description: c.description(),
      hidden: (c as unknown as { _hidden: boolean })._hidden,
    }));
  const full = new Command("rkl");
  await registerCommands(full, ctx, undefined);
  assert.deepEqual(
    shape(full),
    COMMANDS.map((c) => ({
      name: c.name,
      alias: c.alias,
      description: c.hidden ? "" : c.description,
      hidden: c.hidden ?? false,
    })),
  );
  // Registering one module's commands for real and the rest as stubs gives the same list.
  for (const c of COMMANDS) {
    const one = new Command("rkl");
    await registerCommands(one, ctx, c.alias ?? c.name);
    assert.deepEqual(shape(one).map((s) => s.name), shape(full).map((s) => s.name), c.name);
    const real = one.commands.find((x) => x.name() === c.name)!;
    assert.equal(real.description(), c.hidden ? "" : c.description, c.name);
  }
});

Deno.test("commandWord() skips global options and their values", async () => {
  const { commandWord } = await import("../../cli/app.ts");
  assert.equal(commandWord(["--root", "/x", "--debug", "image", "ls"]), "image");
  assert.equal(commandWord(["--runtime", "runc", "c", "run", "f"]), "c");
  assert.equal(commandWord(["--root=/x", "pod", "list"]), "pod");
  assert.equal(commandWord(["--help", "pod"]), undefined);
  assert.equal(commandWord([]), undefined);
});

Deno.test("deno.json loads import() lazily under deno run; compile reads it without that flag", async () => {
  const repo = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
  const conf = JSON.parse(await Deno.readTextFile(`${repo}/deno.json`));
  assert.ok(conf.unstable?.includes("lazy-dynamic-imports"));
  // scripts/compile.sh with a `deno` whose compile only records what it was given.
  const dir = await Deno.makeTempDir({ prefix: "rkl-compile-" });
  try {
    const real = Deno.execPath();
    await Deno.writeTextFile(
      `${dir}/deno`,
      `#!/bin/sh\nif [ "$1" = compile ]; then\n` +
        `  printf '%s\\n' "$@" > "${dir}/argv"\n` +
        `  while [ $# -gt 0 ]; do [ "$1" = --config ] && cp "$2" "${dir}/config.json"; shift; done\n` +
        `  exit 0\nfi\nexec "${real}" "$@"\n`,
    );
    await Deno.chmod(`${dir}/deno`, 0o755);
    const r = await new Deno.Command("bash", {
      args: [
        `${repo}/scripts/compile.sh`,
        repo,
        "x86_64-unknown-linux-gnu",
        `${dir}/out`,
        "--frozen",
      ],
      env: { PATH: `${dir}:${Deno.env.get("PATH")}` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    const argv = (await Deno.readTextFile(`${dir}/argv`)).trim().split("\n");
    assert.deepEqual(argv.slice(-6), [
      "--frozen",
      "--target",
      "x86_64-unknown-linux-gnu",
      "-o",
      `${dir}/out`,
      "cli/main.ts",
    ]);
    const compiled = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    const { unstable: _, ...rest } = conf;
    const others = (conf.unstable as string[]).filter((f) => f !== "lazy-dynamic-imports");
    assert.deepEqual(compiled, others.length > 0 ? { ...rest, unstable: others } : rest);
    // The copy beside deno.json is gone again.
    assert.throws(() => Deno.statSync(`${repo}/.deno.compile.json`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
