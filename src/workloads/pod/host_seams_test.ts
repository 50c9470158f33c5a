/**
 * The pod code reads the node and the files it writes through the Host:
 * given a made-up node and an in-memory file tree, it reports that node and
 * writes into that tree, and never the real host's.
 */
import assert from "node:assert/strict";
import type { FsInfo, HostFs } from "../../sys/fs.ts";
import type { Host, HostNode } from "../host.ts";
import { writeEtcFiles, writeGroupHosts } from "./etc.ts";
import { podInfoOf } from "./sandbox.ts";
import type { PodRecord } from "./types.ts";
import { writeVolumeFiles } from "./volumes.ts";

/** Just enough of a file tree for these tests: files by path, every call recorded. */
class TreeFs implements HostFs {
  readonly files = new Map<string, Uint8Array>();
  readonly dirs = new Set<string>(["/"]);
  readonly modes = new Map<string, number>();
  readonly calls: string[] = [];
  constructor(files: Record<string, string> = {}) {
    for (const [p, t] of Object.entries(files)) this.files.set(p, new TextEncoder().encode(t));
  }
  text(path: string): string {
    const b = this.files.get(path);
    if (!b) throw new Deno.errors.NotFound(path);
    return new TextDecoder().decode(b);
  }
  readTextFile(p: string): string {
    this.calls.push(`readTextFile ${p}`);
    return this.text(p);
  }
  readRegularText(p: string, max: number): string {
    this.calls.push(`readRegularText ${p}`);
    const t = this.text(p);
    if (t.length > max) throw new Deno.errors.InvalidData(p);
    return t;
  }
  readFile(p: string): Uint8Array {
    this.calls.push(`readFile ${p}`);
    const b = this.files.get(p);
    if (!b) throw new Deno.errors.NotFound(p);
    return b;
  }
  writeTextFile(p: string, d: string, o?: { append?: boolean; createNew?: boolean }): void {
    this.calls.push(`writeTextFile ${p}`);
    const before = o?.append && this.files.has(p) ? this.text(p) : "";
    this.writeFile(p, new TextEncoder().encode(before + d), o);
  }
  writeFile(p: string, d: Uint8Array, o?: { createNew?: boolean; mode?: number }): void {
    if (o?.createNew && this.files.has(p)) throw new Deno.errors.AlreadyExists(p);
    const parent = p.slice(0, p.lastIndexOf("/")) || "/";
    if (!this.dirs.has(parent)) throw new Deno.errors.NotFound(parent);
    this.files.set(p, d);
    if (o?.mode !== undefined) this.modes.set(p, o.mode);
  }
  mkdir(p: string, o?: { recursive?: boolean }): void {
    this.calls.push(`mkdir ${p}`);
    const parts = p.split("/").filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const d = `/${parts.slice(0, i).join("/")}`;
      if (i < parts.length && !this.dirs.has(d) && !o?.recursive) throw new Deno.errors.NotFound(d);
      this.dirs.add(d);
    }
  }
  copyFile(from: string, to: string): void {
    this.calls.push(`copyFile ${from} ${to}`);
    this.writeFile(to, this.readFile(from));
  }
  chmod(p: string, mode: number): void {
    this.calls.push(`chmod ${p} ${mode.toString(8)}`);
    this.modes.set(p, mode);
  }
  chown(p: string, uid: number | null, gid: number | null): void {
    this.calls.push(`chown ${p} ${uid}:${gid}`);
  }
  stat(p: string): FsInfo {
    if (!this.files.has(p) && !this.dirs.has(p)) throw new Deno.errors.NotFound(p);
    return {
      isFile: this.files.has(p),
      isDirectory: this.dirs.has(p),
      isSymlink: false,
      size: this.files.get(p)?.length ?? 0,
      mode: this.modes.get(p) ?? null,
      uid: 0,
      gid: 0,
      ino: null,
      dev: null,
      mtime: null,
    };
  }
  lstat(p: string): FsInfo {
    return this.stat(p);
  }
  remove(): void {
    throw new Error("not used here");
  }
  readDir(): never {
    throw new Error("not used here");
  }
  readLink(): never {
    throw new Error("not used here");
  }
  symlink(): void {
    throw new Error("not used here");
  }
  link(): void {
    throw new Error("not used here");
  }
  rename(): void {
    throw new Error("not used here");
  }
  realPath(p: string): string {
    return p;
  }
}

function pod(over: Partial<PodRecord> = {}): PodRecord {
  return {
    schemaVersion: 1,
    kind: "pod",
    name: "web",
    specFile: "web.yaml",
    namespace: "default",
    labels: {},
    annotations: {},
    createdAt: "2026-01-01T00:00:00.000Z",
    created: true,
    restartPolicy: "Always",
    hostNetwork: false,
    shareProcessNamespace: false,
    hostname: "web",
    terminationGracePeriodSeconds: 30,
    runtime: { name: "runc", binary: "/usr/bin/runc", root: "/run/runc" },
    cgroupPath: "rkl/pod-web",
    limits: {},
    initContainers: [],
    containers: [],
    dirs: { dir: "/root/pods/web", etc: "/root/pods/web/etc", volumes: "/root/pods/web/volumes" },
    emptyDirs: {},
    resources: {},
    uid: "u-1",
    network: {
      name: "rkl0",
      cniId: "p_web",
      conflist: { cniVersion: "1.0.0", name: "rkl0", plugins: [] },
      ip: "10.88.0.7",
      portMappings: [],
    },
    ...over,
  };
}

const node: HostNode = {
  hostname: () => "Node-A.Example",
  networkInterfaces: () => [
    { name: "lo", family: "IPv4", address: "127.0.0.1" },
    { name: "veth1234", family: "IPv4", address: "10.88.0.1" },
    { name: "rkl0", family: "IPv4", address: "10.89.0.1" },
    { name: "eth0", family: "IPv6", address: "fe80::1" },
    { name: "eth0", family: "IPv4", address: "192.0.2.10" },
  ],
};

Deno.test("podInfoOf() takes nodeName and hostIP from the Host's node: lower case, first outside IPv4", () => {
  const info = podInfoOf({ node }, pod());
  assert.equal(info.nodeName, "node-a.example");
  assert.equal(info.hostIP, "192.0.2.10");
  assert.equal(info.podIP, "10.88.0.7");
  // With the host's network, the pod's IP is the node's.
  assert.equal(podInfoOf({ node }, pod({ hostNetwork: true })).podIP, "192.0.2.10");
});

Deno.test("podInfoOf() without a node (a fake Host) says localhost and 127.0.0.1", () => {
  const info = podInfoOf({}, pod());
  assert.equal(info.nodeName, "localhost");
  assert.equal(info.hostIP, "127.0.0.1");
});

Deno.test("writeEtcFiles() writes hosts, hostname and resolv.conf into the Host's tree, from its /etc/resolv.conf", () => {
  const fs = new TreeFs({
    "/etc/resolv.conf": "nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch lan\n",
  });
  fs.mkdir("/root/pods/web/etc", { recursive: true });
  writeEtcFiles({ fs }, pod(), "sub");
  assert.match(
    fs.text("/root/pods/web/etc/hosts"),
    /^10\.88\.0\.7\tweb\.sub\.default\.svc\.cluster\.local\tweb$/m,
  );
  assert.equal(fs.text("/root/pods/web/etc/hostname"), "web\n");
  // The loopback resolver is dropped, as for a container; the fake's own server stays.
  assert.equal(fs.text("/root/pods/web/etc/resolv.conf"), "nameserver 192.0.2.53\nsearch lan\n");
});

Deno.test("writeEtcFiles() with the host's network copies the Host's /etc files and appends host aliases", () => {
  const fs = new TreeFs({
    "/etc/hosts": "127.0.0.1 localhost\n",
    "/etc/hostname": "node-a\n",
    "/etc/resolv.conf": "nameserver 192.0.2.53\n",
  });
  fs.mkdir("/root/pods/web/etc", { recursive: true });
  writeEtcFiles({ fs }, pod({ hostNetwork: true }), undefined, [
    { ip: "192.0.2.99", hostnames: ["db"] },
  ]);
  assert.equal(fs.text("/root/pods/web/etc/hostname"), "node-a\n");
  assert.equal(fs.text("/root/pods/web/etc/resolv.conf"), "nameserver 192.0.2.53\n");
  assert.equal(
    fs.text("/root/pods/web/etc/hosts"),
    "127.0.0.1 localhost\n\n# Entries added by HostAliases.\n192.0.2.99\tdb\n",
  );
});

Deno.test("writeVolumeFiles() makes a files volume in the Host's tree, modes and fsGroup applied", () => {
  const fs = new TreeFs();
  fs.mkdir("/v", { recursive: true });
  writeVolumeFiles(
    fs,
    "/v/cfg",
    [
      { path: "a/b.txt", mode: 0o600, data: btoa("hello") },
      { path: "name", mode: 0o644, fieldRef: "metadata.name" },
    ],
    podInfoOf({}, pod()),
    1234,
  );
  assert.equal(fs.text("/v/cfg/a/b.txt"), "hello");
  assert.equal(fs.text("/v/cfg/name"), "web");
  // With fsGroup the group may read, and the dir is setgid.
  assert.equal(fs.modes.get("/v/cfg/a/b.txt"), 0o640);
  assert.equal(fs.modes.get("/v/cfg"), 0o2755);
  assert.ok(fs.calls.includes("chown /v/cfg/name 0:1234"));
});

Deno.test("writeGroupHosts() rewrites each group member's hosts file in the Host's tree", () => {
  const fs = new TreeFs();
  const a = pod({
    name: "a",
    hostname: "a",
    annotations: { "org.rkl.hosts-group": "proj" },
    dirs: { dir: "/p/a", etc: "/p/a/etc", volumes: "/p/a/v" },
  });
  const b = pod({
    name: "b",
    hostname: "b",
    annotations: { "org.rkl.hosts-group": "proj" },
    dirs: { dir: "/p/b", etc: "/p/b/etc", volumes: "/p/b/v" },
    network: { ...pod().network!, ip: "10.88.0.8" },
  });
  fs.mkdir("/p/a/etc", { recursive: true });
  fs.mkdir("/p/b/etc", { recursive: true });
  fs.writeTextFile("/p/a/etc/hosts", "127.0.0.1\tlocalhost\n");
  fs.writeTextFile("/p/b/etc/hosts", "127.0.0.1\tlocalhost\n");
  const store = { list: () => [a, b] };
  writeGroupHosts({ fs, store } as unknown as Host, "proj");
  assert.equal(
    fs.text("/p/a/etc/hosts"),
    "127.0.0.1\tlocalhost\n# rkl hosts group proj\n10.88.0.8\tb\n",
  );
  assert.equal(
    fs.text("/p/b/etc/hosts"),
    "127.0.0.1\tlocalhost\n# rkl hosts group proj\n10.88.0.7\ta\n",
  );
});
