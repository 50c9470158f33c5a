/**
 * What a record read back from disk must look like before rkl acts on it.
 * A record is as hostile as any input: a truncated write, a hand edit or an
 * attacker with write access to the state root must not make rkl delete,
 * unmount or signal anything that is not that object's own. So beyond its
 * shape, every path a record holds must be the one rkl derives from the
 * record's name under this host's roots, and every runtime it names must
 * keep its state under this run root.
 */
import type { RecordValidators } from "../store/store.ts";
import { isDnsLabel } from "../base/names.ts";
import { containerDirs, type Host } from "./host.ts";
import { type RecordSource, recordSource as sourceOf } from "./record_source.ts";

// A small shape checker (zod would cost every command its module load).
type Check = (v: unknown, at: string) => string | undefined;
const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const str: Check = (v, at) => typeof v === "string" ? undefined : `${at}: must be a string`;
const bool: Check = (v, at) => typeof v === "boolean" ? undefined : `${at}: must be a boolean`;
const int: Check = (v, at) => Number.isInteger(v) ? undefined : `${at}: must be an integer`;
const num: Check = (v, at) => typeof v === "number" ? undefined : `${at}: must be a number`;
const oneOf = (...xs: string[]): Check => (v, at) =>
  xs.includes(v as string) ? undefined : `${at}: must be one of ${xs.join(", ")}`;
const opt = (c: Check): Check => (v, at) => v === undefined ? undefined : c(v, at);
const arr = (c: Check): Check => (v, at) => {
  if (!Array.isArray(v)) return `${at}: must be a list`;
  for (const [i, x] of v.entries()) {
    const e = c(x, `${at}.${i}`);
    if (e) return e;
  }
  return undefined;
};
const map = (c: Check): Check => (v, at) => {
  if (!isObj(v)) return `${at}: must be a mapping`;
  for (const [k, x] of Object.entries(v)) {
    const e = c(x, `${at}.${k}`);
    if (e) return e;
  }
  return undefined;
};
const obj = (fields: Record<string, Check>): Check => (v, at) => {
  if (!isObj(v)) return `${at}: must be a mapping`;
  for (const [k, c] of Object.entries(fields)) {
    const e = c(v[k], at ? `${at}.${k}` : k);
    if (e) return e;
  }
  return undefined;
};

const runtimeRef = obj({ name: str, binary: str, root: str });
const conflist = obj({ name: str, plugins: arr(obj({ type: str })) });
const portMapping = obj({ hostPort: int, containerPort: int, protocol: oneOf("tcp", "udp") });

/** Which front end made a record (RecordSource): `meta` is the front end's, any mapping. */
const recordSource = obj({
  kind: oneOf("cri", "yaml", "compose"),
  name: opt(str),
  meta: opt(obj({})),
});

const containerRecord = obj({
  kind: oneOf("container"),
  name: str,
  id: str,
  status: oneOf("creating", "created", "running", "exited", "unknown"),
  createdAt: str,
  pid: opt(int),
  pidStart: opt(num),
  runtime: runtimeRef,
  cgroupPath: str,
  limits: map(num),
  network: opt(obj({ name: str, netns: str, conflist, portMappings: arr(portMapping) })),
  labels: map(str),
  extraNetworks: opt(arr(obj({ name: str, ifName: str, conflist }))),
  pod: opt(str),
  resources: map(bool),
  dirs: map(str),
  subPaths: opt(arr(obj({ root: str, subPath: str, target: str, mount: int }))),
  owner: opt(obj({ pid: int, start: num })),
  source: opt(recordSource),
});

const podRecord = obj({
  kind: oneOf("pod"),
  name: str,
  created: bool,
  runtime: runtimeRef,
  cgroupPath: str,
  netns: opt(str),
  network: opt(obj({ name: str, cniId: str, conflist, portMappings: arr(portMapping) })),
  pause: opt(str),
  initContainers: arr(str),
  containers: arr(str),
  dirs: obj({ dir: str, etc: str, volumes: str }),
  emptyDirs: map(str),
  resources: map(bool),
  nsPins: opt(map(str)),
  sidecars: opt(arr(str)),
  owner: opt(obj({ pid: int, start: num })),
  source: opt(recordSource),
});

const composeRecord = obj({
  kind: oneOf("compose"),
  name: str,
  networks: map(obj({ rklName: str, subnet: str, external: bool })),
  volumes: arr(str),
  services: map(str),
  health: opt(map(str)),
});

type Rec = Record<string, never>;

const CRI_ID = /^[0-9a-f]{64}$/;

function cleanAbsolute(path: unknown): boolean {
  return typeof path === "string" && path.startsWith("/") && !path.split("/").includes("..");
}

/** A CRI object's cgroup: relative, plain segments, ending in the object's own id. */
function criCgroup(path: string, name: string): boolean {
  return /^[A-Za-z0-9_.:@-]+(\/[A-Za-z0-9_.:@-]+)*$/.test(path) &&
    !path.split("/").some((p) => p === "." || p === "..") && path.endsWith(`/${name}`);
}

/** Validators for the store: shape first, then the paths against this host's layout. */
export function recordValidators(
  host: Pick<Host, "paths" | "cgroupParent">,
): RecordValidators {
  const { root, runRoot } = host.paths;
  const runtimeOk = (r: { root: string }) =>
    r.root.startsWith(`${runRoot}/runtime/`) && !r.root.slice(runRoot.length).includes("..");
  return {
    containers(v, name) {
      const bad = containerRecord(v, "");
      if (bad) return bad;
      const r = v as Rec & {
        name: string;
        id: string;
        pod?: string;
        dirs: Record<string, string>;
        runtime: { root: string };
        cgroupPath: string;
        network?: { netns: string };
        subPaths?: { target: string }[];
        source?: RecordSource;
        cri?: unknown;
      };
      // Made through the CRI: its log and cgroup are where the kubelet said.
      const viaCri = sourceOf(r)?.kind === "cri";
      if (r.name !== name) return `name ${JSON.stringify(r.name)} is not the file's`;
      // Its id names its paths: the name it was made with (a rename keeps
      // it), or a random one; a single container's, never a pod member's.
      const idOk = CRI_ID.test(r.id) || isDnsLabel(r.id);
      if (r.id !== name && (r.pod !== undefined || !idOk)) {
        return `id ${JSON.stringify(r.id)} is not one rkl makes`;
      }
      const want = containerDirs(host.paths, r.id) as Record<string, string>;
      for (const [k, path] of Object.entries(want)) {
        // A CRI container logs where the kubelet said (teardown never removes that file).
        if (k === "log" && viaCri) {
          if (!cleanAbsolute(r.dirs.log)) return `dirs.log ${r.dirs.log} is not a clean path`;
          continue;
        }
        if (r.dirs[k] !== path) return `dirs.${k} is not ${path}`;
      }
      if (!runtimeOk(r.runtime)) return `runtime.root ${r.runtime.root} is not under ${runRoot}`;
      if (viaCri) {
        // Below its sandbox's cgroup, which may sit under the kubelet's pod cgroup.
        if (r.id !== name || !criCgroup(r.cgroupPath, name)) {
          return `cgroupPath ${r.cgroupPath} is not its own`;
        }
      } else if (r.pod !== undefined && name === `${r.pod}__pause`) {
        // A pod's pause process (a shared PID namespace): in its pod's cgroup,
        // which for a CRI sandbox sits under the kubelet's pod cgroup.
        const ownPause = criCgroup(r.cgroupPath, "_pause") &&
          r.cgroupPath.endsWith(`/${r.pod}/_pause`);
        const underRkl = r.cgroupPath.startsWith(`${host.cgroupParent}/`) &&
          !r.cgroupPath.includes("..");
        if (!ownPause && !underRkl) {
          return `cgroupPath ${r.cgroupPath} is not its pod's nor under ${host.cgroupParent}`;
        }
      } else if (
        !r.cgroupPath.startsWith(`${host.cgroupParent}/`) || r.cgroupPath.includes("..")
      ) {
        return `cgroupPath ${r.cgroupPath} is not under ${host.cgroupParent}`;
      }
      if (r.network && r.network.netns !== want.netns) return "network.netns is not its own";
      for (const sp of r.subPaths ?? []) {
        if (!sp.target.startsWith(`${want.subPaths}/`)) return "subPaths target is not its own";
      }
      return undefined;
    },
    pods(v, name) {
      const bad = podRecord(v, "");
      if (bad) return bad;
      const r = v as Rec & {
        name: string;
        dirs: { dir: string; etc: string; volumes: string };
        netns?: string;
        emptyDirs: Record<string, string>;
        nsPins?: Record<string, string>;
        runtime: { root: string };
        cgroupPath: string;
        initContainers: string[];
        containers: string[];
        pause?: string;
        source?: RecordSource;
        cri?: unknown;
      };
      if (r.name !== name) return `name ${JSON.stringify(r.name)} is not the file's`;
      const dir = `${root}/pods/${name}`;
      if (
        r.dirs.dir !== dir || r.dirs.etc !== `${dir}/etc` || r.dirs.volumes !== `${dir}/volumes`
      ) {
        return `dirs are not under ${dir}`;
      }
      if (r.netns !== undefined && r.netns !== `${runRoot}/netns/p_${name}`) {
        return "netns is not its own";
      }
      for (const path of Object.values(r.emptyDirs)) {
        if (!path.startsWith(`${dir}/volumes/`) || path.includes("/..")) {
          return `emptyDir ${path} is not under ${dir}/volumes`;
        }
      }
      for (const path of Object.values(r.nsPins ?? {})) {
        if (!path.startsWith(`${runRoot}/ns/p_${name}/`)) return "nsPins are not its own";
      }
      if (!runtimeOk(r.runtime)) return `runtime.root ${r.runtime.root} is not under ${runRoot}`;
      const members = [...r.initContainers, ...r.containers, ...(r.pause ? [r.pause] : [])];
      if (sourceOf(r)?.kind === "cri") {
        // A CRI sandbox: its cgroup may sit under the kubelet's; its members are CRI ids.
        if (r.cgroupPath !== `${host.cgroupParent}/pod-${name}` && !criCgroup(r.cgroupPath, name)) {
          return "cgroupPath is not its own";
        }
        if (members.some((m) => !CRI_ID.test(m) && !m.startsWith(`${name}_`))) {
          return "a member is not the pod's";
        }
        return undefined;
      }
      if (r.cgroupPath !== `${host.cgroupParent}/pod-${name}`) return "cgroupPath is not its own";
      if (members.some((m) => !m.startsWith(`${name}_`))) return "a member is not the pod's";
      return undefined;
    },
    compose(v, name) {
      const bad = composeRecord(v, "");
      if (bad) return bad;
      const r = v as Rec & { name: string };
      if (r.name !== name) return `name ${JSON.stringify(r.name)} is not the file's`;
      return undefined;
    },
  };
}
