/**
 * A census of what rkl can leave on a host: links, pinned netns files, nat
 * rules and chains, cgroup directories, mounts, store records, IP leases.
 * Two censuses taken before and after a test must be equal.
 */

export interface Census {
  links: string[];
  netns: string[];
  nat: string[];
  cgroups: string[];
  mounts: string[];
  records: string[];
  leases: string[];
  files: string[];
}

async function out(cmd: string, args: string[]): Promise<string> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return new TextDecoder().decode(r.stdout);
}

function walk(
  dir: string,
  depth: number,
  pred: (path: string, isDir: boolean) => boolean,
  acc: string[] = [],
): string[] {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return acc;
  }
  for (const e of entries) {
    const p = `${dir}/${e.name}`;
    if (pred(p, e.isDirectory)) acc.push(p);
    if (e.isDirectory && !e.isSymlink && depth > 0) walk(p, depth - 1, pred, acc);
  }
  return acc.sort();
}

export interface CensusScope {
  root: string;
  runRoot: string;
  /** Cgroup parent name the test uses (RKL_CGROUP_PARENT). */
  cgroupParent: string;
}

/**
 * The bridges that the networks of `root` name (its conflists in
 * `root/net.d`, where rkl keeps a root's networks outside the default root).
 */
export function rootBridges(root: string): string[] {
  const out: string[] = [];
  for (const f of walk(`${root}/net.d`, 0, (p) => p.endsWith(".conflist"))) {
    try {
      const list = JSON.parse(Deno.readTextFileSync(f));
      const first = list?.plugins?.[0];
      if (first?.type !== "bridge") continue;
      const br = typeof first.bridge === "string" ? first.bridge : "cni0";
      if (/^[A-Za-z0-9_.-]{1,15}$/.test(br) && !/^\.\.?$/.test(br)) out.push(br);
    } catch { /* not a conflist rkl can read: its bridge is not excused */ }
  }
  return out;
}

/** True when `bridge` is a bridge with nothing attached (its sysfs `brif` dir is empty). */
export function idleBridge(bridge: string): boolean {
  try {
    Deno.statSync(`/sys/class/net/${bridge}/bridge`);
    return [...Deno.readDirSync(`/sys/class/net/${bridge}/brif`)].length === 0;
  } catch {
    return false;
  }
}

/**
 * The host's census as seen from `scope`. An idle bridge of one of the
 * root's own networks is not counted: the bridge is the network's and stays
 * when its last pod or container goes (as podman's, docker's and cni0 do;
 * `rkl gc` or the network's removal deletes it), so a test may leave it or
 * not. A bridge with anything attached, or of any other network, counts.
 */
export async function census(scope: CensusScope): Promise<Census> {
  const own = new Set(rootBridges(scope.root));
  const links = (await out("ip", ["-o", "link"])).split("\n").filter(Boolean).map((l) =>
    l.split(": ")[1].split("@")[0]
  ).filter((l) => !(own.has(l) && idleBridge(l))).sort();
  const nat = (await out("iptables", ["-w", "5", "-t", "nat", "-S"])).split("\n").filter(Boolean)
    .sort();
  const cgroups = walk(
    "/sys/fs/cgroup",
    3,
    (p, isDir) => isDir && p.includes(`/${scope.cgroupParent}`),
  );
  const mounts = Deno.readTextFileSync("/proc/self/mountinfo").split("\n").filter(Boolean).map((
    l,
  ) => l.split(" ")[4])
    .filter((m) =>
      m.startsWith(scope.root) || m.startsWith(scope.runRoot) || m.startsWith("/run/netns")
    ).sort();
  return {
    links,
    netns: [...walk(`${scope.runRoot}/netns`, 0, () => true), ...walk("/run/netns", 0, () => true)],
    nat,
    cgroups,
    mounts,
    records: walk(`${scope.root}/records`, 2, (_p, isDir) => !isDir),
    leases: walk(
      `${scope.root}/cni/networks`,
      1,
      (p, isDir) => !isDir && !/\/(lock|last_reserved_ip\.\d+)$/.test(p),
    ),
    files: [
      ...walk(`${scope.root}/containers`, 0, () => true),
      ...walk(`${scope.runRoot}/conmon`, 0, () => true),
      ...walk(`${scope.runRoot}/ns`, 1, () => true),
      ...walk(`${scope.root}/pods`, 0, () => true),
      ...walk(`${scope.runRoot}/sock`, 0, () => true),
      ...walk(`${scope.root}/exits`, 0, () => true),
      ...walk(`${scope.root}/logs`, 0, () => true),
      ...walk(`${scope.root}/volumes`, 0, () => true),
      // Job statuses and their monitors' pid files (kube play of a Job).
      ...walk(`${scope.root}/kube/jobs`, 0, () => true),
      // The image store: blobs, unpacked layers, image and tag records, temporaries.
      ...walk(`${scope.root}/images/blobs/sha256`, 0, () => true),
      ...walk(`${scope.root}/images/layers`, 0, () => true),
      ...walk(`${scope.root}/images/images`, 0, () => true),
      ...walk(`${scope.root}/images/tags`, 0, () => true),
      ...walk(`${scope.root}/images`, 0, (p) => /\/\.import-/.test(p)),
      // Pod probe monitors' states and pid files (a pod's teardown ends its monitor first).
      ...walk(`${scope.runRoot}/probes`, 0, () => true),
      // Health states; not the monitor's pid file (it exits on its own a little later).
      ...walk(`${scope.runRoot}/health`, 0, (p) => !p.endsWith("/monitor.pid")),
      // Containers the OCI runtimes still know (one dir per container in each --root), but
      // youki's cache of compiled seccomp filters (scripts/youki/libcontainer-seccomp-cache.patch).
      ...walk(
        `${scope.runRoot}/runtime`,
        1,
        (p) =>
          p.split("/").length - scope.runRoot.split("/").length === 3 &&
          !p.endsWith("/.seccomp-cache"),
      ),
    ],
  };
}

/** `dir` and every directory below it (none when `dir` is missing). */
export function dirsBelow(dir: string): string[] {
  const out: string[] = [];
  const walkDirs = (d: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(d)];
    } catch {
      return;
    }
    out.push(d);
    for (const e of entries) if (e.isDirectory) walkDirs(`${d}/${e.name}`);
  };
  walkDirs(dir);
  return out;
}
