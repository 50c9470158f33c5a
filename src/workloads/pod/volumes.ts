/**
 * A pod's volumes: its dirs, emptyDirs (a tmpfs for medium: Memory), claims,
 * image volumes and the files of configMap/secret/downwardAPI/projected
 * volumes.
 */
import { RklError } from "../../errors.ts";
import { fieldValue, type PodInfo } from "../../spec/downward.ts";
import type { PodSpec, VolumeFile } from "../../spec/pod.ts";
import { nodeCapacity } from "../../spec/pod_limits.ts";
import type { HostFs } from "../../sys/fs.ts";
import { privateDir } from "../../sys/fsutil.ts";
import { mountImageLayers } from "../../sys/mounts.ts";
import { trace } from "../../trace.ts";
import { claimDir, type Host } from "../host.ts";
import { podDirs, type PodRecord } from "./types.ts";

/**
 * Makes the pod's dirs, its emptyDirs, claims and image volumes. Each mount
 * (a memory emptyDir, the image volumes) is recorded (`save`) before it is
 * made, so a rollback undoes it.
 */
export function makePodVolumes(host: Host, spec: PodSpec, rec: PodRecord, save: () => void): void {
  privateDir(`${host.paths.root}/pods`, 0o700, host.fs);
  for (const d of [rec.dirs.dir, rec.dirs.etc, rec.dirs.volumes]) {
    host.fs.mkdir(d, { recursive: true, mode: 0o711 });
  }
  for (const v of spec.emptyDirs) {
    const dir = rec.emptyDirs[v];
    host.fs.mkdir(dir, { recursive: true });
    if (spec.memoryDirs && v in spec.memoryDirs) {
      rec.memoryDirs = [...(rec.memoryDirs ?? []), dir];
      save();
      mountMemoryDir(host, dir, spec.memoryDirs[v], rec.limits.memoryLimit);
    }
    host.fs.chmod(dir, 0o777); // as the kubelet makes emptyDir
    if (spec.fsGroup !== undefined) setGroup(host.fs, dir, spec.fsGroup, 0o2777);
  }
  for (const claim of spec.claims) makeClaim(host, claim, spec.fsGroup);
  if (rec.imageVolumes) {
    rec.resources.imageVolumes = true;
    save();
    mountImageVolumes(host, rec);
    trace("pod: image volumes");
  }
}

/**
 * Mounts each image volume's layers on its dir under the pod's volumes dir,
 * read-only and noexec (the members bind that mount); an image gone since
 * the pull (removed meanwhile) is an error at its volume.
 */
function mountImageVolumes(host: Host, rec: PodRecord): void {
  const dirs = podDirs(host, rec.name);
  const empty = `${dirs.dir}/image-volume-empty`;
  host.fs.mkdir(empty, { mode: 0o755 });
  for (const [v, iv] of Object.entries(rec.imageVolumes ?? {})) {
    const image = host.images!.store.find(iv.imageId);
    if (!image) {
      throw new RklError(
        "EIMAGE",
        `Cannot mount image volume ${JSON.stringify(v)}: image ${
          iv.imageId.slice(7, 19)
        } was removed`,
      );
    }
    host.fs.mkdir(iv.dir, { mode: 0o755 });
    mountImageLayers(host.sys, {
      lower: host.images!.store.lowerDirs(image),
      empty,
      target: iv.dir,
    });
  }
}

function setGroup(fs: HostFs, path: string, gid: number, mode: number): void {
  fs.chown(path, 0, gid);
  fs.chmod(path, mode);
}

function makeClaim(host: Host, claim: string, fsGroup: number | undefined): void {
  const dir = claimDir(host.paths, claim);
  privateDir(`${host.paths.root}/volumes`, 0o700, host.fs);
  try {
    const st = host.fs.lstat(dir);
    if (!st.isDirectory) throw new RklError("ECLAIM", `volume ${dir} is not a directory`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    host.fs.mkdir(dir, { mode: 0o755 });
    host.fs.chmod(dir, 0o777);
  }
  if (fsGroup !== undefined) setGroup(host.fs, dir, fsGroup, 0o2777);
}

/**
 * Writes a configMap/secret/downwardAPI/projected volume into its fresh
 * directory (made by this pod, so nothing in it can be a planted link); the
 * paths were checked relative and free of `..` when the file was read.
 */
export function writeVolumeFiles(
  fs: HostFs,
  dir: string,
  files: VolumeFile[],
  info: PodInfo,
  fsGroup: number | undefined,
): void {
  fs.mkdir(dir, { mode: 0o755 });
  fs.chmod(dir, 0o755);
  if (fsGroup !== undefined) setGroup(fs, dir, fsGroup, 0o2755);
  for (const f of files) {
    const path = `${dir}/${f.path}`;
    const parent = path.slice(0, path.lastIndexOf("/"));
    if (parent !== dir) fs.mkdir(parent, { recursive: true, mode: 0o755 });
    const bytes = f.fieldRef !== undefined
      ? new TextEncoder().encode(fieldValue(f.fieldRef, info))
      : Uint8Array.from(atob(f.data ?? ""), (c) => c.charCodeAt(0));
    // With fsGroup the group may read, as the kubelet's volume ownership does.
    const mode = fsGroup !== undefined ? f.mode | 0o440 : f.mode;
    fs.writeFile(path, bytes, { mode, createNew: true });
    fs.chmod(path, mode); // past the umask
    if (fsGroup !== undefined) fs.chown(path, 0, fsGroup);
  }
}

/**
 * A tmpfs for an `emptyDir.medium: Memory`, sized as the kubelet sizes it: the
 * sizeLimit, but never more than the pod's memory limit, or the node's memory
 * when the pod has none. Its pages are charged to the memory cgroup of whoever
 * writes them.
 */
const MS_NOSUID = 0x2;
const MS_NODEV = 0x4;

function mountMemoryDir(
  host: Host,
  dir: string,
  sizeLimit: number | undefined,
  podMemory: number | undefined,
): void {
  const cap = podMemory ?? nodeCapacity().memoryBytes;
  const size = sizeLimit !== undefined && (cap <= 0 || sizeLimit < cap) ? sizeLimit : cap;
  host.sys.mount({
    source: "tmpfs",
    target: dir,
    fstype: "tmpfs",
    flags: MS_NOSUID | MS_NODEV,
    data: `mode=0777${size > 0 ? `,size=${size}` : ""}`,
  });
}
