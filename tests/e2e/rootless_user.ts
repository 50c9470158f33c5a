/**
 * The unprivileged user of the rootless e2e files (rootless_test.ts,
 * rootless_pod_test.ts): made by root with subordinate id ranges, a home and
 * an XDG_RUNTIME_DIR it owns; commands run as it with setpriv and a clean
 * environment; and the census helpers (its processes, its mounts, files left
 * under its run root).
 */
import assert from "node:assert/strict";
import { REPO } from "../_helpers/requires.ts";
import { rklArgv } from "../_helpers/env.ts";

export const dec = new TextDecoder();

export interface User {
  name: string;
  uid: number;
  gid: number;
  home: string;
  xdg: string;
  dir: string;
  subUid: number;
}

export async function sh(cmd: string, args: string[], input?: string): Promise<string> {
  const c = new Deno.Command(cmd, {
    args,
    stdin: input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (input !== undefined) {
    const w = c.stdin.getWriter();
    await w.write(new TextEncoder().encode(input));
    await w.close();
  }
  const r = await c.output();
  if (!r.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${dec.decode(r.stderr)}`);
  }
  return dec.decode(r.stdout);
}

/** Lines of /etc/subuid or /etc/subgid without `name`'s. */
export function withoutUser(file: string, name: string): void {
  const text = Deno.readTextFileSync(file);
  const kept = text.split("\n").filter((l) => l !== "" && !l.startsWith(`${name}:`));
  Deno.writeTextFileSync(file, kept.length ? kept.join("\n") + "\n" : "");
}

/** `name`'s range in the file, appending one above every other when there is none. */
function ensureRange(file: string, name: string): number {
  const text = Deno.readTextFileSync(file);
  let top = 100000;
  for (const l of text.split("\n")) {
    const f = l.split(":");
    if (f.length !== 3) continue;
    if (f[0] === name) return Number(f[1]);
    top = Math.max(top, Number(f[1]) + Number(f[2]));
  }
  Deno.writeTextFileSync(file, `${name}:${top}:65536\n`, { append: true });
  return top;
}

export async function makeUser(): Promise<User> {
  const name = `rklrl${Deno.pid % 100000}`;
  const dir = await Deno.makeTempDir({ prefix: "rkl-rootless-" });
  Deno.chmodSync(dir, 0o755);
  await sh("useradd", ["-M", "-d", `${dir}/home`, "-s", "/bin/sh", name]);
  const uid = Number((await sh("id", ["-u", name])).trim());
  const gid = Number((await sh("id", ["-g", name])).trim());
  const subUid = ensureRange("/etc/subuid", name);
  ensureRange("/etc/subgid", name);
  const home = `${dir}/home`;
  const xdg = `${dir}/xdg`;
  for (const d of [home, xdg, `${home}/.config/rkl`, `${home}/share`]) {
    Deno.mkdirSync(d, { recursive: true, mode: 0o700 });
  }
  // Deno's npm cache for this user (root's is under /root, 0700).
  const denoDir = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
  Deno.mkdirSync(`${home}/.deno`);
  await sh("cp", ["-a", `${denoDir}/npm`, `${home}/.deno/npm`]);
  await sh("chown", ["-R", `${uid}:${gid}`, home, xdg]);
  Deno.chmodSync(xdg, 0o700);
  return { name, uid, gid, home, xdg, dir, subUid };
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment a login would give the user. */
export function userEnv(u: User): Record<string, string> {
  return {
    PATH: "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
    HOME: u.home,
    USER: u.name,
    LOGNAME: u.name,
    XDG_RUNTIME_DIR: u.xdg,
    DENO_DIR: `${u.home}/.deno`,
  };
}

/** Runs a command as the user, with only the environment a login would give. */
export async function asUser(
  u: User,
  argv: string[],
  extraEnv: Record<string, string> = {},
): Promise<Run> {
  const r = await new Deno.Command("setpriv", {
    args: [`--reuid=${u.uid}`, `--regid=${u.gid}`, "--init-groups", ...argv],
    env: { ...userEnv(u), ...extraEnv },
    clearEnv: true,
    cwd: u.home,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

/**
 * `rkl daemon ARGS…` as the user in a session of its own (setsid), with a
 * login's environment and `extraEnv`; its stderr piped for the caller to read.
 */
export function spawnUserDaemon(
  u: User,
  args: string[],
  extraEnv: Record<string, string> = {},
): Deno.ChildProcess {
  return new Deno.Command("setsid", {
    args: [
      "setpriv",
      `--reuid=${u.uid}`,
      `--regid=${u.gid}`,
      "--init-groups",
      ...rklArgv(["daemon", ...args]),
    ],
    env: { ...userEnv(u), ...extraEnv },
    clearEnv: true,
    cwd: u.home,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

export { rklArgv };

/** `rkl ARGS…` as the user, with `extraEnv` over a login's environment. */
export const rklAs = (u: User, args: string[], extraEnv: Record<string, string> = {}) =>
  asUser(u, rklArgv(args), extraEnv);

export async function rklOkAs(u: User, args: string[]): Promise<string> {
  const r = await rklAs(u, args);
  if (r.code !== 0) throw new Error(`rkl ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

export function writeAs(u: User, path: string, text: string): void {
  Deno.writeTextFileSync(path, text);
  Deno.chownSync(path, u.uid, u.gid);
}

export async function waitFor(what: string, fn: () => boolean | Promise<boolean>, ms = 15_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The body of `url` once it answers 2xx (a published port coming up), waited for as waitFor does. */
export async function bodyWhenUp(url: string): Promise<string> {
  let body = "";
  await waitFor("the published port", async () => {
    try {
      const res = await fetch(url);
      body = await res.text();
      return res.ok;
    } catch {
      return false;
    }
  });
  return body;
}

/** The user's processes (zombies the host's init has not reaped yet left out). */
export function processesOf(uid: number): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      if (Deno.statSync(`/proc/${e.name}`).uid !== uid) continue;
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replaceAll("\0", " ").trim();
      out.push(`${e.name} ${cmd}`);
    } catch { /* gone */ }
  }
  return out;
}

export function pausePid(u: User): number {
  return Number(Deno.readTextFileSync(`${u.xdg}/rkl/pause.pid`).trim());
}

/** Mount points of the user's mount namespace below its dirs. */
export function userMounts(u: User): string[] {
  let text = "";
  try {
    text = Deno.readTextFileSync(`/proc/${pausePid(u)}/mountinfo`);
  } catch {
    return [];
  }
  return text.split("\n").map((l) => l.split(" ")[4]).filter((p) => p?.startsWith(u.dir));
}

/** Files under the run root other than rkl's fixed ones (empty dirs are fine). */
export function leftFiles(dir: string): string[] {
  const fixed = new Set(["epoch", "pause.pid", "pause.lock"]);
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of Deno.readDirSync(d)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) walk(`${d}/${e.name}`, r);
      else if (
        !fixed.has(r) && !/^locks\/[^/]+\.lock$/.test(r) &&
        // youki's compiled seccomp filters (scripts/youki/libcontainer-seccomp-cache.patch)
        !/^runtime\/[^/]+\/\.seccomp-cache\/[0-9a-f]{16}\.bpf$/.test(r)
      ) out.push(r);
    }
  };
  walk(dir, "");
  return out;
}

export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

/** An address of this host that is not loopback: slirp4netns forbids the host's 127.0.0.1. */
export function hostAddress(): string | undefined {
  return Deno.networkInterfaces().find((i) =>
    i.family === "IPv4" && !i.address.startsWith("127.") && i.name !== "lo"
  )?.address;
}

/** Opens /dev/net/tun to every user when it is not (slirp4netns opens it as the user); the mode to put back. */
export function openTun(): number | undefined {
  const tun = Deno.statSync("/dev/net/tun").mode! & 0o777;
  if ((tun & 0o006) === 0o006) return undefined;
  Deno.chmodSync("/dev/net/tun", 0o666);
  return tun;
}

/** Copies the test bundles into the user's home, owned by it (uid 0 in its containers). */
export async function bundlesFor(u: User): Promise<void> {
  Deno.mkdirSync(`${u.home}/bundles`, { recursive: true });
  for (const b of ["busybox", "pause"]) {
    await sh("cp", ["-a", `${REPO}/bundles/${b}`, `${u.home}/bundles/${b}`]);
  }
  await sh("chown", ["-R", `${u.uid}:${u.gid}`, `${u.home}/bundles`]);
}

/** Kills what the user left, deletes it and its ranges, and removes its dirs. */
export async function removeUser(u: User): Promise<void> {
  for (const p of processesOf(u.uid)) {
    try {
      Deno.kill(Number(p.split(" ")[0]), "SIGKILL");
    } catch { /* gone */ }
  }
  await waitFor("the user's processes to end", () => processesOf(u.uid).length === 0)
    .catch(() => {});
  await new Deno.Command("userdel", { args: [u.name] }).output();
  withoutUser("/etc/subuid", u.name);
  withoutUser("/etc/subgid", u.name);
  await Deno.remove(u.dir, { recursive: true });
}

/** Files under a dir (relative paths), empty dirs left out. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(d)];
    } catch {
      return;
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) walk(`${d}/${e.name}`, r);
      else out.push(r);
    }
  };
  walk(dir, "");
  return out;
}

/** The user's slirp4netns processes. */
export function slirpsOf(u: User): string[] {
  return processesOf(u.uid).filter((p) => p.includes("slirp4netns"));
}

/**
 * What is left of the user's rkl once every object is removed: `port` closed,
 * no process but the user's pause process, no slirp4netns, no mount, no
 * netns file. Returns the pause process's pid.
 */
export async function assertUserEmpty(user: User, port: number): Promise<number> {
  await waitFor("the port to close", async () => {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return false;
    } catch {
      return true;
    }
  });
  const pause = pausePid(user);
  await waitFor("only the pause process", () => {
    const ps = processesOf(user.uid);
    return ps.length === 1 && ps[0].startsWith(`${pause} `);
  });
  assert.deepEqual(slirpsOf(user), []);
  assert.deepEqual(userMounts(user), []);
  assert.deepEqual(filesUnder(`${user.xdg}/rkl/netns`), []);
  return pause;
}
