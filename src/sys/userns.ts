/**
 * Rootless rkl: an unprivileged user's rkl runs as root of a user namespace
 * that maps the user to 0 and the user's subordinate ids (/etc/subuid,
 * /etc/subgid) to 1..N, written by the setuid newuidmap/newgidmap. One
 * long-lived "pause" process per user holds that namespace and a private
 * mount namespace (podman's design): every rkl command, conmon, the runtime
 * and the containers enter the two, so the overlay mounts and pinned
 * network namespaces that one command makes are there for the next one.
 *
 * Deno runs several threads, and setns(CLONE_NEWUSER) needs a
 * single-threaded caller, so the user's rkl re-executes itself through
 * nsenter(1) rather than joining the namespace in-process. The inner rkl
 * sees itself as uid 0 and takes the paths and the rootless mode from the
 * environment the outer one set (RKL_ROOTLESS=1, believed only when
 * /proc/self/uid_map is not the initial namespace's identity map).
 */
import { RklError } from "../errors.ts";

/** A range of subordinate ids: `start` on the host, `count` of them. */
export interface IdRange {
  start: number;
  count: number;
}

/** What the user namespace maps, for uids and gids. */
export interface IdMaps {
  uid: number;
  gid: number;
  subUid: IdRange;
  subGid: IdRange;
}

/**
 * The first range of `user` (by name or by uid, as shadow's newuidmap
 * accepts both) in the text of /etc/subuid or /etc/subgid. Lines that are
 * comments or malformed are skipped; a range that would wrap is refused.
 */
export function subordinateRange(text: string, user: string, id: number): IdRange | undefined {
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const f = line.split(":");
    if (f.length !== 3 || (f[0] !== user && f[0] !== String(id))) continue;
    if (!/^\d+$/.test(f[1]) || !/^\d+$/.test(f[2])) continue;
    const start = Number(f[1]);
    const count = Number(f[2]);
    if (count < 1 || start + count > 0xffff_ffff) continue;
    return { start, count };
  }
  return undefined;
}

/** True when a /proc/PID/uid_map text is the initial user namespace's (0 0 4294967295). */
export function isInitialUserNs(uidMap: string): boolean {
  return uidMap.trim().split(/\s+/).join(" ") === "0 0 4294967295";
}

/**
 * The argv of newuidmap or newgidmap for `pid`: 0 is the user's own id, and
 * 1.. the subordinate range (which must not hold the user's id: 0 is it).
 */
export function idMapArgs(pid: number, own: number, range: IdRange): string[] {
  return [String(pid), "0", String(own), "1", "1", String(range.start), String(range.count)];
}

/** Where a user's rkl keeps its state, by the XDG base directory rules. */
export interface RootlessRoots {
  /** Records, images, logs: $XDG_DATA_HOME/rkl (~/.local/share/rkl). */
  root: string;
  /** Mounts, namespaces, sockets: $XDG_RUNTIME_DIR/rkl, else /tmp/rkl-UID. */
  runRoot: string;
  /** registries.yaml and auth.json: $XDG_CONFIG_HOME/rkl (~/.config/rkl). */
  configDir: string;
}

export function rootlessRoots(env: Record<string, string | undefined>, uid: number): RootlessRoots {
  const abs = (p: string | undefined) => p && p.startsWith("/") ? p : undefined;
  const home = abs(env.HOME);
  const need = (what: string) => {
    if (!home) {
      throw new RklError("EROOTLESS", `Cannot find ${what}: HOME is not an absolute path`);
    }
    return home;
  };
  const data = abs(env.XDG_DATA_HOME) ?? `${need("$XDG_DATA_HOME")}/.local/share`;
  const config = abs(env.XDG_CONFIG_HOME) ?? `${need("$XDG_CONFIG_HOME")}/.config`;
  const run = abs(env.XDG_RUNTIME_DIR);
  return {
    root: `${data}/rkl`,
    runRoot: run ? `${run}/rkl` : `/tmp/rkl-${uid}`,
    configDir: `${config}/rkl`,
  };
}

/**
 * Makes `path` (mode 0700) when missing, and refuses one that is not a
 * directory owned by `uid` with no access for others: a run root in /tmp
 * that someone else made first must not be used.
 */
export function privateUserDir(path: string, uid: number): void {
  try {
    Deno.mkdirSync(path, { recursive: true, mode: 0o700 });
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
  }
  const st = Deno.lstatSync(path);
  if (!st.isDirectory || st.uid !== uid || ((st.mode ?? 0) & 0o077) !== 0) {
    throw new RklError(
      "EROOTLESS",
      `Cannot use ${path}: it must be a directory owned by uid ${uid} with mode 0700 ` +
        `(found ${st.isDirectory ? "a directory" : "no directory"} of uid ${st.uid}, mode ${
          ((st.mode ?? 0) & 0o7777).toString(8)
        })`,
    );
  }
}

function readOptional(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/** True when this process runs as an inner rootless rkl (see the module comment). */
export function runningRootless(env = Deno.env.get("RKL_ROOTLESS")): boolean {
  if (env !== "1") return false;
  const map = readOptional("/proc/self/uid_map");
  return map !== undefined && !isInitialUserNs(map);
}

/** The id maps for this user, or an error naming what is missing and how to fix it. */
export function idMapsFor(user: string, uid: number, gid: number): IdMaps {
  const subUid = subordinateRange(readOptional("/etc/subuid") ?? "", user, uid);
  const subGid = subordinateRange(readOptional("/etc/subgid") ?? "", user, uid);
  for (const [file, r] of [["/etc/subuid", subUid], ["/etc/subgid", subGid]] as const) {
    if (!r) {
      throw new RklError(
        "EROOTLESS",
        `Cannot run rootless: no subordinate id range for user ${
          JSON.stringify(user)
        } (uid ${uid}) in ${file}`,
        {
          hint: `as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${user}`,
        },
      );
    }
  }
  return { uid, gid, subUid: subUid!, subGid: subGid! };
}

/** The user's name from /etc/passwd (newuidmap matches /etc/subuid by name or uid). */
export function userName(uid: number, passwd = readOptional("/etc/passwd") ?? ""): string {
  for (const line of passwd.split("\n")) {
    const f = line.split(":");
    if (f.length >= 3 && f[2] === String(uid)) return f[0];
  }
  return String(uid);
}

function nsOf(pid: number | "self", ns: string): string | undefined {
  try {
    return Deno.readLinkSync(`/proc/${pid}/ns/${ns}`);
  } catch {
    return undefined;
  }
}

/**
 * The pause process of this run root, when it is alive and is one: owned by
 * `uid`, in a user namespace other than ours, with a mapping written.
 */
export function livePause(pidFile: string, uid: number): number | undefined {
  const text = readOptional(pidFile);
  if (!text || !/^\d+\n?$/.test(text)) return undefined;
  const pid = Number(text.trim());
  try {
    if (Deno.statSync(`/proc/${pid}`).uid !== uid) return undefined;
  } catch {
    return undefined;
  }
  const own = nsOf("self", "user");
  const theirs = nsOf(pid, "user");
  if (!theirs || theirs === own) return undefined;
  const map = readOptional(`/proc/${pid}/uid_map`);
  if (!map || map.trim() === "" || isInitialUserNs(map)) return undefined;
  return pid;
}

function run(argv: string[]): { ok: boolean; err: string } {
  try {
    const r = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).outputSync();
    return { ok: r.success, err: new TextDecoder().decode(r.stderr).trim() };
  } catch (e) {
    return { ok: false, err: (e as Error).message };
  }
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * The pause process for `runDir`, started when missing: `unshare` makes the
 * user and mount namespaces (mounts private) and becomes `sleep infinity`
 * in its own session; newuidmap/newgidmap then write the maps from outside.
 * A lock file in `runDir` keeps two commands from starting two.
 */
export function ensurePause(runDir: string, maps: IdMaps): number {
  const pidFile = `${runDir}/pause.pid`;
  const lock = Deno.openSync(`${runDir}/pause.lock`, {
    read: true,
    write: true,
    create: true,
    mode: 0o600,
  });
  try {
    lock.lockSync(true);
    const live = livePause(pidFile, maps.uid);
    if (live !== undefined) return live;
    const own = nsOf("self", "user");
    const child = new Deno.Command("setsid", {
      args: ["unshare", "--user", "--mount", "--propagation", "private", "sleep", "infinity"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
      cwd: "/",
    }).spawn();
    child.unref();
    child.status.catch(() => {});
    const pid = child.pid;
    const fail = (what: string) => {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
      return new RklError("EROOTLESS", `Cannot start the user namespace: ${what}`, {
        hint: "rkl doctor says what this user lacks",
      });
    };
    // unshare(2) happens right after exec; its exec of sleep follows.
    for (let i = 0;; i++) {
      const ns = nsOf(pid, "user");
      if (ns !== undefined && ns !== own) break;
      if (ns === undefined || i >= 500) throw fail("unshare did not make a user namespace");
      sleepSync(2);
    }
    for (
      const [tool, own, range] of [
        ["newuidmap", maps.uid, maps.subUid],
        ["newgidmap", maps.gid, maps.subGid],
      ] as const
    ) {
      const r = run([tool, ...idMapArgs(pid, own, range)]);
      if (!r.ok) throw fail(`${tool}: ${r.err || "failed"}`);
    }
    const tmp = `${pidFile}.tmp`;
    Deno.writeTextFileSync(tmp, `${pid}\n`, { mode: 0o600 });
    Deno.renameSync(tmp, pidFile);
    return pid;
  } finally {
    lock.close();
  }
}

/** nsenter's argv that runs `argv` as root of the pause process's namespaces, in `cwd`. */
export function enterArgv(pid: number, cwd: string, argv: string[]): string[] {
  return ["nsenter", "-t", String(pid), "-U", "-m", `--wd=${cwd}`, "--", ...argv];
}

/**
 * A new network namespace pinned at `path` (which must not exist), `lo` up,
 * made by a child: in a user namespace this process could not setns back to
 * the host's network namespace, which the in-process way (netns.ts) does.
 */
export function createNetnsByChild(path: string): void {
  Deno.writeFileSync(path, new Uint8Array(), { createNew: true, mode: 0o444 });
  const r = run(["unshare", `--net=${path}`, "--", "ip", "link", "set", "lo", "up"]);
  if (!r.ok) {
    run(["umount", path]);
    try {
      Deno.removeSync(path);
    } catch { /* gone */ }
    throw new RklError("ENETNS", `Cannot make network namespace ${path}: ${r.err}`);
  }
}
