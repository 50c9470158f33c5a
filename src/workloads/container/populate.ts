/**
 * docker's copy into an empty volume: a named volume that is empty when a
 * container is made gets the image's files at the mount point (their
 * owners, modes and links kept), so `-v html:/usr/share/nginx/html` starts
 * with nginx's page, as it does with docker. Compose's `volume.nocopy` and
 * `--mount …,volume-nocopy` leave it empty.
 *
 * The copy reads the container's rootfs (the image's layers, hostile) and
 * writes into the volume, which other containers may have mounted:
 * - the mount point is opened beneath the rootfs with no symlink followed
 *   (a link there, as with `/var/run`, means no copy), and `cp -a` reads it
 *   through that fd, copying links inside it as links;
 * - `cp` writes into a new private dir beside `_data` (`.populate-…`, which
 *   no container sees), whose entries are then renamed into `_data`: a
 *   rename replaces a name and never follows a link another container put
 *   there; with `_data` no longer empty by then, nothing is moved.
 * A copy that fails (a device node rootless) is a warning: the container
 * starts with the volume as it was, and the partial copy goes; one cut
 * short by a kill is gc's (its dir names the copier's pid).
 */
import { openBeneath } from "../../sys/subpath.ts";
import { removeAll } from "./_fs.ts";
import { randomHexId } from "../../base/hex.ts";
import type { Host } from "../host.ts";
import type { ContainerRecord } from "./types.ts";
import { VOLUME_DIR_NAME } from "../volumes.ts";

/** Fills each empty volume of `rec.populate` from `rootfs` (mounted); warns about a failed copy. */
export async function populateVolumes(host: Host, rec: ContainerRecord): Promise<void> {
  const list = Array.isArray(rec.populate) ? rec.populate : [];
  for (const p of list) {
    // Read back from disk: a volume's dir name and an absolute container path only.
    if (
      typeof p?.volume !== "string" || !VOLUME_DIR_NAME.test(p.volume) ||
      typeof p.destination !== "string" || !p.destination.startsWith("/")
    ) continue;
    try {
      await populateOne(host, rec.dirs.rootfs, `${host.paths.root}/volumes/${p.volume}`, p);
    } catch (e) {
      host.warn(
        `volume ${
          JSON.stringify(p.volume)
        }: the image's files at ${p.destination} were not copied in: ${(e as Error).message}`,
      );
    }
  }
}

const isEmpty = (host: Host, dir: string) => host.fs.readDir(dir).length === 0;

async function populateOne(
  host: Host,
  rootfs: string,
  volumeDir: string,
  p: { volume: string; destination: string },
): Promise<void> {
  const data = `${volumeDir}/_data`;
  if (!isEmpty(host, data)) return;
  let fd: number;
  try {
    fd = openBeneath(host.sys, rootfs, p.destination.slice(1), { create: false });
  } catch {
    return; // not in the image, or through a link: nothing to copy
  }
  // The copier's pid in the name: gc removes one whose copier died (a kill -9 midway).
  const tmp = `${volumeDir}/.populate-${host.proc.self}-${randomHexId().slice(0, 16)}`;
  try {
    const src = `/proc/${host.proc.self}/fd/${fd}`;
    const st = host.fs.stat(src);
    if (!st.isDirectory || isEmpty(host, src)) return;
    host.fs.mkdir(tmp, { mode: 0o700 });
    // `SRC/.` copies the directory's entries and its own owner and mode onto tmp.
    const r = await host.cmd.run("cp", { args: ["-a", "--", `${src}/.`, tmp] });
    if (r.code !== 0) throw new Error(r.stderr.trim().split("\n")[0] || `cp exited ${r.code}`);
    if (!isEmpty(host, data)) return; // another container wrote first: its files stay
    for (const e of host.fs.readDir(tmp)) host.fs.rename(`${tmp}/${e.name}`, `${data}/${e.name}`);
    const t = host.fs.lstat(tmp);
    if (t.uid !== null && t.gid !== null) host.fs.chown(data, t.uid, t.gid);
    if (t.mode !== null) host.fs.chmod(data, t.mode & 0o7777);
  } finally {
    host.sys.close(fd);
    removeAll(host.fs, tmp);
  }
}
