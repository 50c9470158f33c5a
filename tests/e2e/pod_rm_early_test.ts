/**
 * A served `pod rm` answers once the pod's containers are gone and the pod
 * is marked removing; its network, namespaces and dirs go after the answer,
 * under the store lock. No later command sees the half-removed pod, a
 * `pod run` of the name waits for the removal, and a removal cut short (the
 * daemon killed) is finished by `gc`, `pod rm -f` or `pod run` of the name.
 */
import assert from "node:assert/strict";
import {
  censusTests,
  cleanupAfterAll,
  makeEnv,
  rkl,
  rklOk,
  waitFor,
  waitForSocket,
} from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { startDaemon, stopDaemon } from "../_helpers/daemon.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki");
const env = ready ? await makeEnv("podrm-early", 32) : undefined;
const { test } = censusTests(ready, () => env!);
cleanupAfterAll(env);

const podFile = (name: string) =>
  `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}}\nspec:\n  containers:\n    - {name: app, image: ${REPO}/bundles/busybox, command: [sleep, "600"]}\n`;

async function write(name: string, text: string): Promise<string> {
  const path = `${env!.dir}/${name}`;
  await Deno.writeTextFile(path, text);
  return path;
}

/** Runs `fn` while a daemon serves this env's commands; the daemon's log once it has stopped. */
async function served(fn: () => Promise<void>): Promise<string> {
  const manifests = `${env!.dir}/manifests`;
  await Deno.mkdir(manifests, { recursive: true });
  const daemon = startDaemon(env!, manifests, {
    stderr: "piped",
    args: ["--no-cri"],
    env: { RKL_TRACE: "1" },
  });
  const text = new Response(daemon.stderr).text();
  const sock = `${env!.runRoot}/cli.sock`;
  try {
    await waitForSocket("cli socket", sock, 20_000);
    await fn();
  } finally {
    await stopDaemon(daemon);
  }
  return await text;
}

const recordPath = (name: string) => `${env!.root}/records/pods/${name}.json`;

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

test("a served pod rm answers before its teardown ends; nothing sees the pod after; run of the name waits", async () => {
  const file = await write("early.yaml", podFile("early"));
  const args = ["pod", "run", "--network", env!.network, file];
  const log = await served(async () => {
    for (let i = 0; i < 3; i++) {
      assert.equal(await rklOk(env!, args), "early\n");
      assert.equal(await rklOk(env!, ["pod", "rm", "-f", "early"]), "early\n");
      // Straight after the answer: gone to the readers, whatever the teardown still does.
      assert.equal(await rklOk(env!, ["pod", "list", "-q"]), "");
      const inspect = await rkl(env!, ["pod", "state", "early"]);
      assert.match(inspect.stderr, /Cannot find pod "early"/);
      assert.doesNotMatch(await rklOk(env!, ["container", "list", "-q"]), /early/);
    }
    // The last teardown, too, ends: record, netns and pod dir go.
    await waitFor("the teardown's end", () => !exists(recordPath("early")), 10_000);
    await waitFor("the netns", () => !exists(`${env!.runRoot}/netns/p_early`), 10_000);
    assert.ok(!exists(`${env!.root}/pods/early`));
  });
  assert.equal(log.match(/cli: served pod rm \(exit 0\)/g)?.length, 3, log);
  // Each answer went out between the members' end and the teardown's end.
  const steps = log.split("\n").map((l) =>
    /pod teardown: members gone/.test(l)
      ? "members"
      : /serve: command done/.test(l)
      ? "answer"
      : /pod teardown: done/.test(l)
      ? "done"
      : ""
  ).filter(Boolean).join(" ");
  assert.equal(steps.match(/members answer (answer )*done/g)?.length, 3, steps);
});

test("a removal cut short (marked removing, remover dead) is hidden, and gc, rm -f and run of the name finish it", async () => {
  const file = await write("cut.yaml", podFile("cut"));
  const args = ["pod", "run", "--network", env!.network, file];
  // What a daemon killed after its answer leaves: the record marked, a remover gone.
  const cutShort = async () => {
    const rec = JSON.parse(await Deno.readTextFile(recordPath("cut")));
    const dead = new Deno.Command("true").spawn();
    await dead.status;
    rec.removing = true;
    rec.remover = { pid: dead.pid, start: 1 };
    await Deno.writeTextFile(recordPath("cut"), JSON.stringify(rec));
  };
  for (const finish of ["gc", "rm", "run"] as const) {
    await rklOk(env!, args);
    await cutShort();
    assert.equal(await rklOk(env!, ["pod", "list", "-q"]), "");
    assert.match((await rkl(env!, ["pod", "state", "cut"])).stderr, /Cannot find pod "cut"/);
    if (finish === "gc") {
      assert.match(await rklOk(env!, ["gc"]), /pod cut: removal finished/);
    } else if (finish === "rm") {
      assert.equal(await rklOk(env!, ["pod", "rm", "-f", "cut"]), "cut\n");
    } else {
      // The run finishes the old pod's removal under the lock, then makes the new one.
      assert.equal(await rklOk(env!, args), "cut\n");
      assert.equal(await rklOk(env!, ["pod", "list", "-q"]), "cut\n");
      await rklOk(env!, ["pod", "rm", "-f", "cut"]);
    }
    assert.ok(!exists(recordPath("cut")), `${finish}: the record is left`);
    assert.ok(!exists(`${env!.runRoot}/netns/p_cut`), `${finish}: the netns is left`);
  }
});
