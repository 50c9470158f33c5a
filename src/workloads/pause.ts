/**
 * Pause and unpause through the cgroup freezer, as `docker pause` does:
 * every process of the container's cgroup stops being scheduled, and
 * resumes where it was.
 *
 * - cgroup v1: `freezer.state` in the freezer hierarchy: write FROZEN (it
 *   reads FREEZING until every task is frozen) or THAWED.
 * - cgroup v2: `cgroup.freeze`: write 1 or 0; `cgroup.events` says
 *   `frozen 1` once the whole subtree is frozen.
 *
 * The record keeps status "running"; a paused container is one whose
 * cgroup is frozen ({@linkcode isPaused}), so no record can disagree with
 * the kernel.
 */
import { ConflictError } from "../errors.ts";
import type { ContainerRecord } from "./container/types.ts";
import { getContainer } from "./container/record.ts";
import { quickRefresh } from "./container/status.ts";
import type { Host } from "./host.ts";
import { about, noteEvent } from "./event_log.ts";
import { type CgroupLayout, layoutOf, type ReadText, readTextOrUndefined } from "./stats.ts";

/** Reads through the host's file port (cgroupfs on a real host, a MemFs in tests). */
function reader(host: Host): ReadText {
  return (path) => {
    try {
      return host.fs.readTextFile(path);
    } catch {
      return undefined;
    }
  };
}

/** The file that freezes `rel`, and what it reads when frozen and thawed. */
export function freezerFile(
  layout: CgroupLayout,
  rel: string,
): { file: string; freeze: string; thaw: string; done?: string } | undefined {
  if (rel.startsWith("/") || rel.split("/").some((s) => s === "" || s === "." || s === "..")) {
    throw new TypeError(`cgroup path ${JSON.stringify(rel)} must be relative and plain`);
  }
  if (layout.version === 2) {
    const d = `${layout.root}/${rel}`;
    return { file: `${d}/cgroup.freeze`, freeze: "1", thaw: "0", done: `${d}/cgroup.events` };
  }
  const root = layout.mounts.freezer;
  return root === undefined
    ? undefined
    : { file: `${root}/${rel}/freezer.state`, freeze: "FROZEN", thaw: "THAWED" };
}

/** True when the cgroup is frozen (or freezing). */
export function frozen(layout: CgroupLayout, rel: string, read: ReadText = readTextOrUndefined) {
  const f = freezerFile(layout, rel);
  if (f === undefined) return false; // no freezer (a rootless rkl's): never frozen
  const t = read(f.file)?.trim();
  return t === f.freeze || t === "FREEZING";
}

/** Whether the container's cgroup is frozen (false when it is not running). */
export function isPaused(host: Host, rec: Pick<ContainerRecord, "status" | "cgroupPath">): boolean {
  if (rec.status !== "running") return false;
  try {
    return frozen(layoutOf(host.cgroups), rec.cgroupPath, reader(host));
  } catch {
    return false;
  }
}

async function setFrozen(host: Host, rec: ContainerRecord, on: boolean): Promise<void> {
  const f = freezerFile(layoutOf(host.cgroups), rec.cgroupPath);
  if (!f) {
    throw new ConflictError(
      `Cannot ${on ? "pause" : "unpause"} ${
        JSON.stringify(rec.name)
      }: no freezer controller is mounted`,
    );
  }
  const read = reader(host);
  host.fs.writeTextFile(f.file, on ? f.freeze : f.thaw);
  // Wait until the kernel says it is done (v1 FREEZING → FROZEN; v2 cgroup.events frozen).
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    if (f.done !== undefined) {
      const ev = /^frozen (\d)$/m.exec(read(f.done) ?? "");
      if (!ev || ev[1] === (on ? "1" : "0")) return;
    } else {
      const t = read(f.file)?.trim();
      if (t === (on ? f.freeze : f.thaw)) return;
      if (on && t === "THAWED") host.fs.writeTextFile(f.file, f.freeze);
    }
    await host.sleep(10);
  }
  throw new ConflictError(
    `Cannot ${on ? "pause" : "unpause"} ${
      JSON.stringify(rec.name)
    }: ${f.file} did not settle in 5 s`,
  );
}

/** Freezes a running container (`rkl container pause`, `compose pause`). */
export async function pauseContainer(host: Host, name: string): Promise<ContainerRecord> {
  const rec = await quickRefresh(host, getContainer(host, name));
  if (rec.status !== "running") {
    throw new ConflictError(`Cannot pause ${JSON.stringify(name)}: it is ${rec.status}`);
  }
  if (isPaused(host, rec)) {
    throw new ConflictError(`Cannot pause ${JSON.stringify(name)}: it is already paused`);
  }
  await setFrozen(host, rec, true);
  noteEvent(host, { action: "pause", ...about(rec) });
  return rec;
}

/** Thaws a paused container. */
export async function unpauseContainer(host: Host, name: string): Promise<ContainerRecord> {
  const rec = await quickRefresh(host, getContainer(host, name));
  if (!isPaused(host, rec)) {
    throw new ConflictError(`Cannot unpause ${JSON.stringify(name)}: it is not paused`);
  }
  await setFrozen(host, rec, false);
  noteEvent(host, { action: "unpause", ...about(rec) });
  return rec;
}

/** The status as shown: "paused" for a running container whose cgroup is frozen. */
export function shownStatus(host: Host, rec: ContainerRecord): string {
  return isPaused(host, rec) ? "paused" : rec.status;
}
