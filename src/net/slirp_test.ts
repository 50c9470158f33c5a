import assert from "node:assert/strict";
import { FakeCommandRunner } from "../sys/command.ts";
import { NetworkError } from "../errors.ts";
import { slirpArgv, SlirpCni, slirpConflist, slirpKey, type SlirpOptions } from "./slirp.ts";
import { bridgeConflist } from "./network.ts";

Deno.test("slirpArgv() configures tap0 with host loopback off, on the pinned namespace", () => {
  assert.deepEqual(slirpArgv("/usr/bin/slirp4netns", "/run/x/netns/c_a", "/run/x/slirp/k.sock"), [
    "/usr/bin/slirp4netns",
    "--configure",
    "--mtu=65520",
    "--disable-host-loopback",
    "--enable-sandbox",
    "--enable-seccomp",
    "--api-socket=/run/x/slirp/k.sock",
    "--netns-type=path",
    "/run/x/netns/c_a",
    "tap0",
  ]);
});

Deno.test("slirpKey() is short and stable", () => {
  assert.equal(slirpKey("r1234-c-web"), slirpKey("r1234-c-web"));
  assert.notEqual(slirpKey("a"), slirpKey("b"));
  assert.match(slirpKey("x".repeat(500)), /^[0-9a-f]{8}$/);
});

function fake(dir: string, procs: Map<number, string[]>) {
  const killed: [number, Deno.Signal][] = [];
  const options: SlirpOptions = {
    dir,
    binary: "/usr/bin/slirp4netns",
    spawn: () => {
      throw new Error("no spawn in this test");
    },
    kill: (pid, sig) => {
      killed.push([pid, sig]);
      procs.delete(pid);
    },
    cmdline: (pid) => procs.get(pid),
    sleep: () => Promise.resolve(),
  };
  return { cni: new SlirpCni(new FakeCommandRunner(), options), killed };
}

Deno.test("SlirpCni refuses a conflist with root-only plugins, naming the plugin", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { cni } = fake(dir, new Map());
    const list = bridgeConflist("rkl0", { subnet: "10.89.0.0/24", ipamDataDir: "/x" });
    const att = { containerId: "c", netns: "/n", ifName: "eth0" };
    await assert.rejects(() => cni.add(list, att), NetworkError);
    await assert.rejects(() => cni.add(list, att), /plugin "bridge" needs root/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SlirpCni del stops only a slirp4netns of that netns, and tolerates none", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const procs = new Map<number, string[]>([
      [100, ["/usr/bin/slirp4netns", "--netns-type=path", "/n/c_a", "tap0"]],
      [200, ["/usr/bin/sleep", "1000"]],
    ]);
    const { cni, killed } = fake(dir, procs);
    const list = slirpConflist("rkl0");
    const a = { containerId: "a", netns: "/n/c_a", ifName: "eth0" };
    const b = { containerId: "b", netns: "/n/c_b", ifName: "eth0" };
    // Nothing started for b: no error, nothing killed.
    await cni.del(list, b);
    // A pid file that names another process (pid reused): left alone.
    Deno.writeTextFileSync(`${dir}/${slirpKey("b")}.pid`, "200\n");
    await cni.del(list, b);
    assert.deepEqual(killed, []);
    Deno.writeTextFileSync(`${dir}/${slirpKey("a")}.pid`, "100\n");
    await cni.del(list, a);
    assert.deepEqual(killed, [[100, "SIGTERM"]]);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    await assert.rejects(() => cni.check(list, a), /slirp4netns is gone/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
