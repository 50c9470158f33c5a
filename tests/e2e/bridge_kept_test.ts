/**
 * The bridge is the network's, not a pod's (issue 35): the last `pod rm`
 * leaves it up and idle, the next `pod run` uses it as it is, and `rkl gc`
 * deletes it. A failed command still takes back what it made: a `pod run`
 * (or `container run`) whose CNI ADD made the bridge and that then fails
 * leaves no bridge; one that found the bridge there leaves it. Through the
 * CLI against youki, conmon, the CNI plugins and iptables; `ip monitor link`
 * shows that the failing command's ADD did make (and its rollback delete)
 * the bridge, so the "no bridge after" cases cannot pass by the failure
 * coming before the ADD.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rkl, rklOk } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki");
const env = ready ? await makeEnv("bridge-kept", 30) : undefined;
const { test } = censusTests(ready, () => env!);
cleanupAfterAll(env);

const BUSYBOX = `${REPO}/bundles/busybox`;

/** A pod of one container; `command` a program that exists, or one that does not. */
async function podFile(name: string, command = `[sleep, "3600"]`): Promise<string> {
  const path = `${env!.dir}/${name}.yaml`;
  await Deno.writeTextFile(
    path,
    `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}}\nspec:\n  containers:\n` +
      `    - name: main\n      image: ${BUSYBOX}\n      command: ${command}\n`,
  );
  return path;
}

/** A program the container's create (or start) cannot exec: the command fails after ADD. */
const MISSING = `[/no/such/program]`;

const podRun = async (name: string, command?: string) =>
  rkl(env!, ["pod", "run", "--network", env!.network, await podFile(name, command)]);

/** The bridge's sysfs entry: its ifindex (a bridge made again gets a new one), or undefined. */
function bridgeIndex(): number | undefined {
  try {
    return Number(Deno.readTextFileSync(`/sys/class/net/${env!.network}/ifindex`).trim());
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** The interfaces attached to the env's bridge. */
function ports(): string[] {
  return [...Deno.readDirSync(`/sys/class/net/${env!.network}/brif`)].map((e) => e.name);
}

/** `rkl gc` deletes the env's idle bridge, and says so. */
async function gcDeletesBridge(): Promise<void> {
  const out = await rklOk(env!, ["gc"]);
  assert.match(out, new RegExp(`deleted bridge ${env!.network}\\b`), out);
  assert.equal(bridgeIndex(), undefined, "the bridge is still there after gc");
}

/** No bridge to begin with: whatever an earlier test left goes through gc. */
async function noBridge(): Promise<void> {
  if (bridgeIndex() !== undefined) await gcDeletesBridge();
}

/**
 * Runs `fn` while `ip monitor link` watches, and returns what the monitor saw
 * of the env's bridge: "made" for a new link, "deleted" for its deletion.
 */
async function watchBridge<T>(fn: () => Promise<T>): Promise<[T, string[]]> {
  const mon = new Deno.Command("ip", {
    args: ["-o", "monitor", "link"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  // Until it has subscribed: a link made and deleted here shows up in its output.
  const probe = `rkbk30p${Deno.pid % 1000}`;
  const out: string[] = [];
  const dec = new TextDecoder();
  const reading = (async () => {
    for await (const chunk of mon.stdout) out.push(dec.decode(chunk));
  })();
  const seen = () => out.join("").includes(probe);
  for (let i = 0; i < 100 && !seen(); i++) {
    await new Deno.Command("ip", { args: ["link", "add", probe, "type", "bridge"] }).output();
    await new Deno.Command("ip", { args: ["link", "delete", probe] }).output();
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(seen(), "ip monitor link saw nothing");
  let result: T;
  try {
    result = await fn();
    await new Promise((r) => setTimeout(r, 200)); // the monitor's last lines
  } finally {
    mon.kill("SIGTERM");
    await mon.status;
    await reading;
  }
  const br = env!.network;
  const events: string[] = [];
  for (const l of out.join("").split("\n")) {
    if (!new RegExp(`^(Deleted )?\\d+: ${br}[:@]`).test(l)) continue;
    const kind = l.startsWith("Deleted ") ? "deleted" : "made";
    if (events.at(-1) !== kind) events.push(kind); // a link's changes (up, address) are one "made"
  }
  return [result, events];
}

test("pod rm leaves the bridge up and idle, the next pod run uses the same bridge, and rkl gc deletes it", async () => {
  await noBridge();
  const first = await podRun("kept");
  assert.equal(first.code, 0, first.stderr);
  const made = bridgeIndex();
  assert.ok(made !== undefined, "pod run made no bridge");
  assert.equal(ports().length, 1, `one veth on the bridge: ${ports()}`);
  await rklOk(env!, ["pod", "rm", "-f", "kept"]);
  assert.equal(bridgeIndex(), made, "pod rm deleted the bridge");
  assert.deepEqual(ports(), [], "a veth is left on the bridge after pod rm");
  // The next pod joins it as it is: the same link (not deleted and made again), and it routes.
  const [again, events] = await watchBridge(() => podRun("kept"));
  assert.equal(again.code, 0, again.stderr);
  assert.equal(bridgeIndex(), made, "the second pod run made the bridge again");
  assert.ok(!events.includes("deleted"), `bridge events during the second run: ${events}`);
  const ip = (JSON.parse(await rklOk(env!, ["pod", "state", "kept", "-o", "json"])) as {
    ip: string;
  }).ip;
  const gw = `${ip.split(".").slice(0, 3).join(".")}.1`;
  const ping = await rkl(env!, ["pod", "exec", "kept", "main", "--", "ping", "-c1", "-W2", gw]);
  assert.equal(
    ping.code,
    0,
    `the pod does not reach the kept bridge: ${ping.stdout}${ping.stderr}`,
  );
  // gc leaves a bridge in use alone.
  assert.doesNotMatch(await rklOk(env!, ["gc"]), /deleted bridge/);
  assert.equal(bridgeIndex(), made, "gc deleted a bridge in use");
  await rklOk(env!, ["pod", "rm", "-f", "kept"]);
  assert.equal(bridgeIndex(), made);
  await gcDeletesBridge();
});

test("a pod run that fails after its ADD made the bridge leaves no bridge", async () => {
  await noBridge();
  const [r, events] = await watchBridge(() => podRun("broken", MISSING));
  assert.notEqual(r.code, 0, "a pod whose command does not exist ran");
  assert.match(r.stderr, /no\/such\/program/, r.stderr);
  assert.deepEqual(
    events,
    ["made", "deleted"],
    "the failed run's ADD made the bridge, its rollback deleted it",
  );
  assert.equal(bridgeIndex(), undefined, "the failed pod run left its bridge");
  assert.equal(await rklOk(env!, ["pod", "list", "-q"]), "");
});

test("a container run that fails after its ADD made the bridge leaves no bridge", async () => {
  await noBridge();
  const file = `${env!.dir}/broken-c.yaml`;
  await Deno.writeTextFile(file, `name: broken-c\nimage: ${BUSYBOX}\nargs: ${MISSING}\n`);
  const [r, events] = await watchBridge(() =>
    rkl(env!, ["container", "run", "--network", env!.network, file])
  );
  assert.notEqual(r.code, 0, "a container whose command does not exist ran");
  assert.deepEqual(events, ["made", "deleted"], r.stderr);
  assert.equal(bridgeIndex(), undefined, "the failed container run left its bridge");
  assert.equal(await rklOk(env!, ["container", "list", "-q"]), "");
});

test("a pod run that fails where the bridge was already there leaves it: idle, or with another pod on it", async () => {
  await noBridge();
  // Idle, left by an earlier pod's rm.
  assert.equal((await podRun("earlier")).code, 0);
  await rklOk(env!, ["pod", "rm", "-f", "earlier"]);
  const idle = bridgeIndex();
  assert.ok(idle !== undefined);
  const [r1, ev1] = await watchBridge(() => podRun("broken", MISSING));
  assert.notEqual(r1.code, 0);
  assert.deepEqual(ev1.filter((e) => e === "deleted"), [], `bridge events: ${ev1}`);
  assert.equal(bridgeIndex(), idle, "the failed pod run deleted the idle bridge it found");
  assert.deepEqual(ports(), []);
  // Another pod's, in use.
  const other = await podRun("other");
  assert.equal(other.code, 0, other.stderr);
  const r2 = await podRun("broken", MISSING);
  assert.notEqual(r2.code, 0);
  assert.equal(bridgeIndex(), idle, "the failed pod run deleted the other pod's bridge");
  assert.equal(ports().length, 1, `the other pod's veth: ${ports()}`);
  assert.equal(await rklOk(env!, ["pod", "list", "-q"]), "other\n");
  await rklOk(env!, ["pod", "rm", "-f", "other"]);
  await gcDeletesBridge();
});
