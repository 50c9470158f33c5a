/**
 * Network objects that are host-wide whatever the state root: bridges,
 * subnets, host ports. Two roots on one host must never share one by
 * accident, so rkl treats them in two ways:
 *
 * - Names are owned per root. The bridges of the networks rkl writes (the
 *   default `rkl0`, compose networks) carry the root's hash outside the
 *   default root, as CNI container ids already do (the workloads pass the
 *   name in). Two roots then never meet on one bridge through rkl's own
 *   networks, and one bridge never gets two subnets.
 * - Subnets cannot be derived from a name without a chance of collision, so
 *   they are chosen under one host-wide lock (`HOST_NET_LOCK`) against a
 *   host-wide view: the kernel's routes and interface addresses, and the
 *   claims every root's rkl leaves in `SUBNET_CLAIMS_DIR` (one file per
 *   subnet naming the conflist that uses it; a claim whose conflist is gone
 *   or names another subnet is stale and removed). Claims outlive a reboot
 *   because conflists do, while a bridge, and its route, exists only while
 *   something runs on it.
 *
 * A bridge may still be shared on purpose (two roots' own conflists naming
 * one bridge, with disjoint ranges): it is deleted only when no interface of
 * any root is attached to it, checked in `/sys/class/net/BR/brif` under the
 * same lock, which every bridge plugin ADD holds shared.
 */
import { NetworkError } from "../errors.ts";
import type { CommandRunner } from "../sys/command.ts";
import { type FsEntry, type HostFs, realFs } from "../sys/fs.ts";
import { MAX_INPUT_BYTES } from "../sys/readfile.ts";
import { tryLock } from "../sys/trylock.ts";
import type { NetConfList } from "./cni.ts";
import { readTextBoundedOn } from "./bounded.ts";

/** Held shared by each bridge plugin ADD, alone to choose a subnet or delete a bridge. */
export const HOST_NET_LOCK = "/run/lock/rkl-net.lock";
/** Subnet claims of every state root: persistent, as the conflists they stand for. */
export const SUBNET_CLAIMS_DIR = "/var/lib/rkl-subnets";

/**
 * The host-wide lock port: flock(2) on a file under /run/lock, shared or
 * alone, held while `fn` runs. An fd call, so not part of HostFs; a
 * FakeHost answers it from a table of held locks.
 */
export interface HostLock {
  hold<T>(path: string, exclusive: boolean, fn: () => Promise<T>): Promise<T>;
}

/** The real one: the lock file is made when missing (and left, as lock files are). */
export const flockHostLock: HostLock = {
  async hold<T>(path: string, exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    // A free lock (the common case) is taken at once, so that `fn` starts in
    // this very turn: a CNI plugin is then spawned before the caller's next
    // synchronous steps (a pod's namespaces, its containers' plans and
    // configs: 10-15 ms here), not after them as behind an awaited flock.
    const release = tryLock(path, exclusive);
    if (release) {
      try {
        return await fn();
      } finally {
        release();
      }
    }
    const f = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
    try {
      await f.lock(exclusive);
      return await fn();
    } finally {
      f.close();
    }
  },
};

export function withHostLock<T>(
  path: string,
  exclusive: boolean,
  fn: () => Promise<T>,
  lock: HostLock = flockHostLock,
): Promise<T> {
  return lock.hold(path, exclusive, fn);
}

const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/** An IPv4 CIDR as its masked base and prefix length; undefined when malformed. */
export function parseCidr(text: string): { base: number; bits: number } | undefined {
  const m = CIDR.exec(text);
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  if (octets.some((o) => o > 255) || bits > 32) return undefined;
  const addr = ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) >>> 0;
  return { base: (addr & mask(bits)) >>> 0, bits };
}

const mask = (bits: number) => bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;

/** The network an address with prefix length belongs to (`10.0.0.7/24` → `10.0.0.0/24`). */
export function networkOf(text: string): string | undefined {
  const c = parseCidr(text);
  if (!c) return undefined;
  const b = c.base;
  return `${b >>> 24}.${(b >>> 16) & 255}.${(b >>> 8) & 255}.${b & 255}/${c.bits}`;
}

/** True when the two CIDRs share an address. */
export function overlaps(a: string, b: string): boolean {
  const x = parseCidr(a);
  const y = parseCidr(b);
  if (!x || !y) return false;
  const m = mask(Math.min(x.bits, y.bits));
  return ((x.base & m) >>> 0) === ((y.base & m) >>> 0);
}

/** Something on the host that already uses a subnet. */
export interface SubnetUse {
  subnet: string;
  /** Who, for a message: `a route on eth0`, `network "rkl0" (/path.conflist)`. */
  by: string;
  /** The interface, for kernel entries. */
  dev?: string;
  /** The conflist, for rkl's own entries. */
  conflist?: string;
}

/** Routed IPv4 subnets and their interfaces, from /proc/net/route (default routes left out). */
export function kernelRoutes(routeTable: string): SubnetUse[] {
  const out: SubnetUse[] = [];
  for (const line of routeTable.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || f[1] === "00000000" || f[7] === "00000000") continue;
    const ip = (hex: string) =>
      [3, 2, 1, 0].map((i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16)).join(".");
    const bits = ip(f[7]).split(".").reduce(
      (n, o) => n + Number(o).toString(2).replaceAll("0", "").length,
      0,
    );
    const subnet = networkOf(`${ip(f[1])}/${bits}`);
    if (subnet) out.push({ subnet, by: `a route on ${f[0]}`, dev: f[0] });
  }
  return out;
}

/** Subnets of the interfaces' IPv4 addresses, from `ip -o -4 addr show` (down links too). */
export function interfaceSubnets(ipAddr: string): SubnetUse[] {
  const out: SubnetUse[] = [];
  for (const line of ipAddr.split("\n")) {
    const m = /^\d+:\s+(\S+)\s+inet\s+(\S+)/.exec(line);
    if (!m) continue;
    const subnet = networkOf(m[2]);
    // /32 host addresses (a VPN's, a loopback alias) route nothing to a bridge's range.
    if (subnet && !subnet.endsWith("/32")) {
      out.push({ subnet, by: `an address on ${m[1]}`, dev: m[1] });
    }
  }
  return out;
}

/** The host-local subnets a conflist's plugins use. */
export function conflistSubnets(list: unknown): string[] {
  const out: string[] = [];
  const plugins = (list as { plugins?: unknown })?.plugins;
  if (!Array.isArray(plugins)) return out;
  for (const p of plugins) {
    const ipam = (p as { ipam?: { subnet?: unknown; ranges?: unknown } })?.ipam;
    if (typeof ipam?.subnet === "string") out.push(ipam.subnet);
    if (!Array.isArray(ipam?.ranges)) continue;
    for (const set of ipam.ranges) {
      if (!Array.isArray(set)) continue;
      for (const r of set) {
        const s = (r as { subnet?: unknown })?.subnet;
        if (typeof s === "string") out.push(s);
      }
    }
  }
  return out;
}

/** A conflist's JSON, or undefined; a FIFO or a huge file in a conf dir is never waited on. */
function readJson(path: string, fs: HostFs): unknown {
  try {
    return JSON.parse(readTextBoundedOn(fs, path, { max: MAX_INPUT_BYTES }));
  } catch {
    return undefined;
  }
}

/** The entries of `dir`, none when it cannot be read (not made yet). */
function dirEntries(dir: string, fs: HostFs): FsEntry[] {
  try {
    return fs.readDir(dir);
  } catch {
    return [];
  }
}

/** Subnets of the conflists in `dir` (other than `except`). */
export function confDirSubnets(dir: string, except?: string, fs: HostFs = realFs): SubnetUse[] {
  const out: SubnetUse[] = [];
  const entries = dirEntries(dir, fs);
  for (const e of entries) {
    const path = `${dir}/${e.name}`;
    if (!e.name.endsWith(".conflist") || path === except) continue;
    const list = readJson(path, fs) as { name?: unknown } | undefined;
    for (const subnet of conflistSubnets(list)) {
      out.push({ subnet, by: `network ${JSON.stringify(list?.name)} (${path})`, conflist: path });
    }
  }
  return out;
}

const CLAIM_NAME = /^(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})_(\d{1,2})$/;
const claimFile = (subnet: string) => subnet.replace("/", "_");

/**
 * The live claims in `dir`: a claim lives while the conflist it names exists
 * and still uses its subnet. With `prune` (the caller holds the lock) stale
 * ones are removed.
 */
export function readClaims(dir: string, prune = false, fs: HostFs = realFs): SubnetUse[] {
  const out: SubnetUse[] = [];
  const entries = dirEntries(dir, fs);
  for (const e of entries) {
    const m = CLAIM_NAME.exec(e.name);
    if (!m || !e.isFile) continue;
    const subnet = `${m[1]}/${m[2]}`;
    let conflist = "";
    try {
      // A claim names a conflist path: a few hundred bytes at most.
      conflist = readTextBoundedOn(fs, `${dir}/${e.name}`, { max: 4096, follow: false }).trim();
    } catch { /* gone meanwhile */ }
    const list = conflist.startsWith("/")
      ? readJson(conflist, fs) as { name?: unknown }
      : undefined;
    if (list && conflistSubnets(list).includes(subnet)) {
      out.push({
        subnet,
        by: `network ${JSON.stringify(list.name)} (${conflist})`,
        conflist,
      });
    } else if (prune) {
      try {
        fs.remove(`${dir}/${e.name}`);
      } catch { /* gone */ }
    }
  }
  return out;
}

/** The first entry of `taken` that overlaps `subnet`. */
export function subnetConflict(taken: SubnetUse[], subnet: string): SubnetUse | undefined {
  return taken.find((t) => overlaps(t.subnet, subnet));
}

/** The first candidate that overlaps nothing taken. */
export function pickSubnet(taken: SubnetUse[], candidates: Iterable<string>): string | undefined {
  for (const c of candidates) if (!subnetConflict(taken, c)) return c;
  return undefined;
}

/** `PREFIX.FIRST.0/24` … `PREFIX.255.0/24`, for a PREFIX of two octets. */
export function slash24s(prefix: string, first = 0): string[] {
  const out: string[] = [];
  for (let i = first; i < 256; i++) out.push(`${prefix}.${i}.0/24`);
  return out;
}

export interface HostNetOptions {
  /** Runs `ip` for the interfaces' addresses. */
  cmd: CommandRunner;
  claimsDir?: string;
  lockPath?: string;
  /** Conflist dirs to read besides the claims (this root's, the default root's). */
  confDirs?: string[];
  /** Test hooks: the route table and `ip -o -4 addr` text. */
  routeTable?: string;
  /** Claims, conflists, /proc/net/route (default: the real file system). */
  fs?: HostFs;
  /** The host-wide lock (default: flock). */
  lock?: HostLock;
}

/** Everything on the host that uses a subnet, but the bridge `own` and the conflist `path`. */
async function hostSubnets(
  options: HostNetOptions,
  own: { bridge: string; path: string },
): Promise<SubnetUse[]> {
  const fs = options.fs ?? realFs;
  let routes = options.routeTable;
  if (routes === undefined) {
    try {
      routes = fs.readTextFile("/proc/net/route");
    } catch {
      routes = "";
    }
  }
  const addr = await options.cmd.run("ip", { args: ["-o", "-4", "addr", "show"] });
  const kernel = [...kernelRoutes(routes), ...interfaceSubnets(addr.stdout)].filter((u) =>
    u.dev !== own.bridge
  );
  const files = [
    ...readClaims(options.claimsDir ?? SUBNET_CLAIMS_DIR, true, fs),
    ...(options.confDirs ?? []).flatMap((d) => confDirSubnets(d, own.path, fs)),
  ].filter((u) => u.conflist !== own.path);
  return [...kernel, ...files];
}

export interface BridgeNetwork {
  /** Path of the conflist to write. */
  path: string;
  /** The conflist, given the subnet chosen. */
  make(subnet: string): NetConfList;
  bridge: string;
  /** A subnet the user asked for: refused when something else on the host uses it. */
  subnet?: string;
  /** Else the first free one of these. */
  candidates?: Iterable<string>;
}

/**
 * Writes a bridge network's conflist with a subnet no other network on the
 * host uses, and claims the subnet, under the host-wide lock. A conflist
 * another process wrote meanwhile is returned as it is.
 */
export async function writeBridgeNetwork(
  net: BridgeNetwork,
  options: HostNetOptions,
): Promise<NetConfList> {
  const claims = options.claimsDir ?? SUBNET_CLAIMS_DIR;
  const fs = options.fs ?? realFs;
  return await withHostLock(options.lockPath ?? HOST_NET_LOCK, true, async () => {
    const existing = readJson(net.path, fs) as NetConfList | undefined;
    if (existing) return existing;
    const taken = await hostSubnets(options, net);
    let subnet = net.subnet;
    const name = JSON.stringify(net.path.slice(net.path.lastIndexOf("/") + 1, -".conflist".length));
    if (subnet) {
      const c = subnetConflict(taken, subnet);
      if (c) {
        throw new NetworkError(
          `Cannot create network ${name}: subnet ${subnet} overlaps ${c.subnet} of ${c.by}`,
        );
      }
    } else {
      subnet = pickSubnet(taken, net.candidates ?? []);
      if (!subnet) {
        throw new NetworkError(
          `Cannot create network ${name}: every candidate subnet is in use on this host`,
        );
      }
    }
    const list = net.make(subnet);
    const dir = net.path.slice(0, net.path.lastIndexOf("/"));
    // The claim first: a conflist without its claim would be a network no
    // other root sees when choosing a subnet; a claim without its conflist is
    // stale and pruned by the next choice.
    fs.mkdir(claims, { recursive: true, mode: 0o700 });
    const claim = `${claims}/${claimFile(subnet)}`;
    writeRenamed(fs, claim, `${net.path}\n`, 0o600);
    try {
      fs.mkdir(dir, { recursive: true });
      writeRenamed(fs, net.path, JSON.stringify(list, null, 2) + "\n");
    } catch (e) {
      try {
        fs.remove(claim);
      } catch { /* the next choice prunes it */ }
      throw e;
    }
    return list;
  }, options.lock);
}

/**
 * Writes `path` through a temp file beside it and a rename, so a reader sees
 * all of it or nothing; the temp file goes when the write or rename fails.
 */
function writeRenamed(fs: HostFs, path: string, text: string, mode?: number): void {
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    fs.writeTextFile(tmp, text, mode === undefined ? {} : { mode });
    fs.rename(tmp, path);
  } catch (e) {
    try {
      fs.remove(tmp);
    } catch { /* not made */ }
    throw e;
  }
}

/** Removes the claims of conflist `path` (after the conflist itself is gone). */
export async function releaseSubnetClaims(
  path: string,
  options: { claimsDir?: string; lockPath?: string; fs?: HostFs; lock?: HostLock } = {},
): Promise<void> {
  const dir = options.claimsDir ?? SUBNET_CLAIMS_DIR;
  const fs = options.fs ?? realFs;
  await withHostLock(options.lockPath ?? HOST_NET_LOCK, true, () => {
    for (const e of dirEntries(dir, fs)) {
      if (!CLAIM_NAME.test(e.name)) continue;
      try {
        if (fs.readTextFile(`${dir}/${e.name}`).trim() === path) fs.remove(`${dir}/${e.name}`);
      } catch (err) {
        // Gone meanwhile is fine; a claim that stays would keep its subnet taken.
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
    return Promise.resolve();
  }, options.lock);
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

/** The interfaces attached to bridge `bridge` (any root's, anyone's). */
export function bridgePorts(
  bridge: string,
  sysClassNet = "/sys/class/net",
  fs: HostFs = realFs,
): string[] {
  if (!IFNAME.test(bridge) || bridge === "." || bridge === "..") return [];
  try {
    return fs.readDir(`${sysClassNet}/${bridge}/brif`).map((e) => e.name);
  } catch {
    return [];
  }
}

/**
 * Deletes `bridge` when nothing is attached to it, under the host-wide lock
 * (a bridge plugin ADD, which attaches a veth, holds it shared). True when it
 * was deleted; false when something is attached or it is gone.
 */
export async function deleteIdleBridge(
  cmd: CommandRunner,
  bridge: string,
  options: { lockPath?: string; sysClassNet?: string; fs?: HostFs; lock?: HostLock } = {},
): Promise<boolean> {
  if (!IFNAME.test(bridge)) {
    throw new NetworkError(`Cannot delete bridge ${JSON.stringify(bridge)}: not a device name`);
  }
  return await withHostLock(options.lockPath ?? HOST_NET_LOCK, true, async () => {
    if (bridgePorts(bridge, options.sysClassNet, options.fs).length > 0) return false;
    const res = await cmd.run("ip", { args: ["link", "delete", bridge, "type", "bridge"] });
    if (res.code === 0) return true;
    if (/Cannot find device/.test(res.stderr)) return false;
    throw new NetworkError(`Cannot delete bridge ${JSON.stringify(bridge)}: ${res.stderr.trim()}`);
  }, options.lock);
}

/**
 * Host ports that nat rules forward (portmap's, for any rkl root or other
 * CNI user, and anyone else's DNAT): `port/proto` → who, for a message.
 * portmap's rule in CNI-HOSTPORT-DNAT carries the CNI container id and jumps
 * to a per-container chain holding the DNAT rules.
 */
export function forwardedPorts(natDump: string): Map<string, { id?: string; chain: string }> {
  const rules = natDump.split("\n").filter((l) => l.startsWith("-A "));
  const owners = new Map<string, string>(); // chain → CNI container id
  for (const r of rules) {
    const jump = / -j (\S+)/.exec(r)?.[1];
    const id = /id: \\?"([^"\\]+)\\?"/.exec(r)?.[1];
    if (jump && id && r.startsWith("-A CNI-HOSTPORT-DNAT ")) owners.set(jump, id);
  }
  const out = new Map<string, { id?: string; chain: string }>();
  for (const r of rules) {
    if (!/ -j DNAT( |$)/.test(r)) continue;
    const proto = / -p (tcp|udp)( |$)/.exec(r)?.[1];
    const ports = / --dports? (\S+)/.exec(r)?.[1];
    if (!proto || !ports) continue;
    const chain = r.split(" ")[1];
    for (const part of ports.split(",")) {
      const [lo, hi] = part.split(":").map(Number);
      if (!Number.isInteger(lo)) continue;
      const end = Number.isInteger(hi) ? Math.min(hi, 65535) : lo;
      for (let p = lo; p <= end; p++) {
        const key = `${p}/${proto}`;
        if (!out.has(key)) out.set(key, { id: owners.get(chain), chain });
      }
    }
  }
  return out;
}

/** Why a host port is held by a nat rule, or undefined; rules of CNI container `ownId` aside. */
export function forwardedBy(
  forwarded: Map<string, { id?: string; chain: string }>,
  port: number,
  protocol: string,
  ownId?: string,
): string | undefined {
  const f = forwarded.get(`${port}/${protocol}`);
  if (!f || (ownId && f.id === ownId)) return undefined;
  if (!f.id) return `a nat rule in chain ${f.chain} forwards it`;
  const who = JSON.stringify(f.id);
  return `a nat rule forwards it to CNI container ${who} (another rkl root's, or another CNI user's)`;
}

/** The nat table as `iptables-save` prints it ("" when it cannot be read). */
export async function natTable(cmd: CommandRunner): Promise<string> {
  try {
    const res = await cmd.run("iptables-save", { args: ["-t", "nat"] });
    return res.code === 0 ? res.stdout : "";
  } catch {
    return ""; // no iptables-save: portmap cannot have forwarded anything either
  }
}
