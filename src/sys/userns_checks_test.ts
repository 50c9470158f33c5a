import assert from "node:assert/strict";
import { kernelVersion, rootlessChecks, type RootlessView } from "./userns_checks.ts";

const V1 = "30 25 0:26 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";

function view(over: Partial<RootlessView> & { files?: Record<string, string> } = {}): RootlessView {
  const files: Record<string, string> = {
    "/proc/sys/user/max_user_namespaces": "63000\n",
    "/etc/subuid": "alice:100000:65536\n",
    "/etc/subgid": "alice:100000:65536\n",
    "/proc/self/mountinfo": V1,
    "/proc/self/uid_map": "0 0 4294967295\n",
    ...over.files,
  };
  const tools: Record<string, string> = {
    newuidmap: "/usr/bin/newuidmap",
    newgidmap: "/usr/bin/newgidmap",
    nsenter: "/usr/bin/nsenter",
    unshare: "/usr/bin/unshare",
    slirp4netns: "/usr/bin/slirp4netns",
    pasta: "/usr/bin/pasta",
    runc: "/usr/bin/runc",
    conmon: "/usr/bin/conmon",
  };
  return {
    read: (p) => files[p],
    which: (n) => tools[n],
    mode: (p) => p.endsWith("map") ? 0o104755 : 0o20666,
    canOpenRw: () => true,
    kernelRelease: () => "6.1.0-18-amd64",
    uid: 1001,
    user: "alice",
    ...over,
  };
}

const byName = (v: RootlessView, name: string) => rootlessChecks(v).find((c) => c.name === name)!;

Deno.test("rootlessChecks() passes a host with everything", () => {
  const checks = rootlessChecks(view());
  assert.deepEqual(checks.filter((c) => !c.ok).map((c) => c.name), []);
});

Deno.test("rootlessChecks() names a missing subuid range as required, with usermod", () => {
  const c = byName(view({ files: { "/etc/subuid": "bob:100000:65536\n" } }), "subuid range");
  assert.equal(c.ok, false);
  assert.equal(c.required, true);
  assert.match(c.detail, /no line for alice \(uid 1001\) in \/etc\/subuid/);
  assert.match(c.fix!, /usermod --add-subuids 100000-165535 alice/);
});

Deno.test("rootlessChecks() names uidmap for missing newuidmap, and disabled user namespaces", () => {
  const v = view({ which: (n) => n === "newuidmap" ? undefined : `/usr/bin/${n}` });
  const c = byName(v, "newuidmap");
  assert.equal(c.ok, false);
  assert.match(c.fix!, /apt-get install uidmap/);
  const ns = byName(
    view({
      files: {
        "/proc/sys/user/max_user_namespaces": "0\n",
        "/proc/sys/kernel/unprivileged_userns_clone": "0\n",
      },
    }),
    "user namespaces",
  );
  assert.equal(ns.ok, false);
  assert.match(ns.detail, /max_user_namespaces is 0; kernel.unprivileged_userns_clone is 0/);
});

Deno.test("rootlessChecks() warns of no slirp4netns, a closed /dev/net/tun, an old kernel, no runc on v1", () => {
  const v = view({
    which: (n) => ["slirp4netns", "runc"].includes(n) ? undefined : `/usr/bin/${n}`,
    canOpenRw: () => false,
    mode: () => 0o20600,
    kernelRelease: () => "5.10.0-28-amd64",
  });
  const slirp = byName(v, "slirp4netns");
  assert.deepEqual([slirp.ok, slirp.required], [false, false]);
  assert.match(slirp.detail, /the default network does not work \(--network pasta does\)/);
  const pasta = byName(v, "pasta");
  assert.deepEqual([pasta.ok, pasta.required], [true, false]);
  assert.match(pasta.detail, /--network pasta/);
  const tun = byName(v, "/dev/net/tun");
  assert.equal(tun.ok, false);
  assert.match(tun.detail, /mode 600/);
  assert.match(tun.fix!, /chmod 0666 \/dev\/net\/tun/);
  assert.equal(byName(v, "overlay in a user namespace").ok, false);
  const rt = byName(v, "OCI runtime");
  assert.equal(rt.ok, false);
  assert.match(rt.detail, /youki 0.7.0 as published cannot run rootless on cgroup v1/);
});

Deno.test("rootlessChecks(): on cgroup v1, rkl's youki does without runc; another youki does not", () => {
  const noRunc = (n: string) => n === "runc" ? undefined : `/usr/bin/${n}`;
  const ours = byName(
    view({ which: noRunc, youkiRootlessV1: (b) => b === "/usr/bin/youki" }),
    "OCI runtime",
  );
  assert.equal(ours.ok, true);
  assert.match(ours.detail, /^youki \(\/usr\/bin\/youki, rkl's build\)/);
  const theirs = byName(view({ which: noRunc, youkiRootlessV1: () => false }), "OCI runtime");
  assert.equal(theirs.ok, false);
  // With runc too, rkl's youki is named (it is the one picked).
  const all = (n: string) => `/usr/bin/${n}`;
  assert.match(
    byName(view({ which: all, youkiRootlessV1: () => true }), "OCI runtime").detail,
    /^youki/,
  );
});

Deno.test("kernelVersion() reads major and minor", () => {
  assert.deepEqual(kernelVersion("6.18.44-fc"), [6, 18]);
  assert.deepEqual(kernelVersion("5.11.0"), [5, 11]);
  assert.deepEqual(kernelVersion("x"), [0, 0]);
});
