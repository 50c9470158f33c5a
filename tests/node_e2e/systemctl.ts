/**
 * The `systemctl` stand-in of the node e2e harness (tests/node_e2e/run.ts),
 * on the suite's PATH only. This host's PID 1 is not systemd, so the suite
 * starts the kubelet itself as a child process; specs that restart it run
 * `sudo systemctl list-units *kubelet* [--state=running]` (and take the
 * first `kubelet-\w+` of the answer as the unit), `reset-failed UNIT`,
 * `kill [-s SIG] UNIT` and `restart UNIT`. Here the unit is that kubelet:
 * the process whose executable is RKL_E2E_KUBELET and whose command line
 * holds RKL_E2E_KUBELET_MATCH (the harness's CRI endpoint). Before it is
 * signalled its argv, environment and working directory are saved in
 * RKL_E2E_STATE, and `restart`/`start` run exactly that again (same flags,
 * same config file, which the suite may have rewritten meanwhile), in its own
 * session, its output appended to RKL_E2E_KUBELET_LOG. A kubelet started
 * here is no longer the suite's child: the harness stops it at the end
 * (`kubeletPids`). Anything else is refused with one line on stderr.
 */

export const UNIT = "kubelet-rkle2e";

export interface StandinEnv {
  kubelet: string;
  match: string;
  state: string;
  log: string;
}

interface Saved {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
}

const dec = new TextDecoder();

function envOf(): StandinEnv {
  const get = (k: string) => {
    const v = Deno.env.get(k);
    if (!v) throw new Error(`systemctl stand-in: ${k} is not set`);
    return v;
  };
  return {
    kubelet: get("RKL_E2E_KUBELET"),
    match: get("RKL_E2E_KUBELET_MATCH"),
    state: get("RKL_E2E_STATE"),
    log: get("RKL_E2E_KUBELET_LOG"),
  };
}

/** A process's state letter from /proc/PID/stat ("Z" zombie, "T" stopped), or undefined when gone. */
function procState(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  } catch {
    return undefined;
  }
}

const alive = (pid: number) => {
  const s = procState(pid);
  return s !== undefined && s !== "Z" && s !== "X";
};

/** The kubelets this harness runs: executable `kubelet`, command line holding `match`. */
export function kubeletPids(kubelet: string, match: string): number[] {
  const want = Deno.realPathSync(kubelet);
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const pid = Number(e.name);
    try {
      if (Deno.readLinkSync(`/proc/${pid}/exe`) !== want) continue;
      const argv = dec.decode(Deno.readFileSync(`/proc/${pid}/cmdline`)).split("\0");
      if (!argv.some((a) => a.includes(match))) continue;
      if (alive(pid)) out.push(pid);
    } catch { /* gone, or not ours to read */ }
  }
  return out;
}

function save(env: StandinEnv, pid: number): void {
  const split = (f: string) =>
    dec.decode(Deno.readFileSync(`/proc/${pid}/${f}`)).split("\0").filter((s, i, a) =>
      s !== "" || i < a.length - 1
    );
  const argv = split("cmdline");
  const vars: Record<string, string> = {};
  for (const kv of split("environ")) {
    const i = kv.indexOf("=");
    if (i > 0) vars[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const saved: Saved = { argv, env: vars, cwd: Deno.readLinkSync(`/proc/${pid}/cwd`) };
  Deno.mkdirSync(env.state, { recursive: true });
  Deno.writeTextFileSync(`${env.state}/${UNIT}.json`, JSON.stringify(saved) + "\n");
}

function saved(env: StandinEnv): Saved | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(`${env.state}/${UNIT}.json`)) as Saved;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SIGTERM (and SIGCONT, for a stopped one), then SIGKILL after 20 s; waits until they are gone. */
async function terminate(pids: number[]): Promise<void> {
  for (const p of pids) {
    try {
      Deno.kill(p, "SIGTERM");
      Deno.kill(p, "SIGCONT");
    } catch { /* gone */ }
  }
  const end = Date.now() + 20_000;
  while (pids.some(alive) && Date.now() < end) await sleep(100);
  for (const p of pids.filter(alive)) {
    try {
      Deno.kill(p, "SIGKILL");
    } catch { /* gone */ }
  }
  const hard = Date.now() + 10_000;
  while (pids.some(alive) && Date.now() < hard) await sleep(100);
  if (pids.some(alive)) throw new Error(`kubelet ${pids.filter(alive).join(",")} did not exit`);
}

async function start(env: StandinEnv): Promise<void> {
  const s = saved(env);
  if (!s) throw new Error(`${UNIT}: never seen running, nothing to start`);
  const child = new Deno.Command("setsid", {
    args: [
      "-f",
      "sh",
      "-c",
      'cd "$1" || exit 1; log=$2; shift 2; exec "$@" </dev/null >>"$log" 2>&1',
      "sh",
      s.cwd,
      env.log,
      ...s.argv,
    ],
    env: s.env,
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  });
  const r = await child.output();
  if (!r.success) throw new Error(`starting the kubelet: ${dec.decode(r.stderr).trim()}`);
  const end = Date.now() + 10_000;
  while (kubeletPids(env.kubelet, env.match).length === 0) {
    if (Date.now() > end) throw new Error(`the kubelet did not start; see ${env.log}`);
    await sleep(100);
  }
}

function signalName(s: string): Deno.Signal {
  const numbers: Record<string, string> = {
    "1": "SIGHUP",
    "2": "SIGINT",
    "9": "SIGKILL",
    "15": "SIGTERM",
    "19": "SIGSTOP",
    "18": "SIGCONT",
  };
  const name = numbers[s] ?? (s.startsWith("SIG") ? s : `SIG${s}`);
  if (!/^SIG[A-Z0-9]+$/.test(name)) throw new Error(`bad signal: ${s}`);
  return name as Deno.Signal;
}

function globMatch(pattern: string, s: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replaceAll("*", ".*").replaceAll(
    "?",
    ".",
  );
  return new RegExp(`^${re}$`).test(s);
}

/** One systemctl invocation; returns its exit code (stdout/stderr written through `out`/`err`). */
export async function systemctl(
  args: string[],
  env: StandinEnv,
  out: (s: string) => void,
  err: (s: string) => void,
): Promise<number> {
  const flags = args.filter((a) => a.startsWith("-"));
  const words: string[] = [];
  let signal: Deno.Signal = "SIGTERM";
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "-s" || a === "--signal") signal = signalName(args[++i] ?? "");
    else if (a.startsWith("--signal=")) signal = signalName(a.slice(9));
    else if (!a.startsWith("-")) words.push(a);
  }
  const [verb, ...rest] = words;
  const pids = () => kubeletPids(env.kubelet, env.match);
  if (verb === "list-units") {
    const running = pids().length > 0;
    const onlyRunning = flags.some((f) => f === "--state=running");
    const patterns = rest.length > 0 ? rest : ["*"];
    if (!patterns.some((p) => globMatch(p, `${UNIT}.service`))) return 0;
    if (running) out(`${UNIT}.service loaded active running rkl node e2e kubelet\n`);
    else if (!onlyRunning && saved(env)) {
      out(`${UNIT}.service loaded inactive dead rkl node e2e kubelet\n`);
    }
    return 0;
  }
  if (verb === "daemon-reload") return 0;
  if (rest.length !== 1) {
    err(`systemctl stand-in (rkl node e2e): '${args.join(" ")}' is not supported\n`);
    return 1;
  }
  const unit = rest[0].replace(/\.service$/, "");
  if (unit !== UNIT) {
    err(`Unit ${rest[0]} not loaded.\n`);
    return 5;
  }
  const now = pids();
  switch (verb) {
    case "reset-failed":
      return 0;
    case "is-active":
      out(now.length > 0 ? "active\n" : "inactive\n");
      return now.length > 0 ? 0 : 3;
    case "status":
      out(
        `${UNIT}.service - rkl node e2e kubelet\n   Active: ${
          now.length > 0 ? `active (running), pids ${now.join(",")}` : "inactive (dead)"
        }\n`,
      );
      return now.length > 0 ? 0 : 3;
    case "kill":
      if (now.length === 0) {
        err(`Failed to kill unit ${UNIT}.service: no process to kill\n`);
        return 1;
      }
      save(env, now[0]);
      for (const p of now) Deno.kill(p, signal);
      return 0;
    case "stop":
      if (now.length > 0) {
        save(env, now[0]);
        await terminate(now);
      }
      return 0;
    case "start":
      if (now.length === 0) await start(env);
      return 0;
    case "restart":
      if (now.length > 0) {
        save(env, now[0]);
        await terminate(now);
      }
      await start(env);
      return 0;
  }
  err(`systemctl stand-in (rkl node e2e): '${verb}' is not supported\n`);
  return 1;
}

if (import.meta.main) {
  const enc = new TextEncoder();
  try {
    Deno.exit(
      await systemctl(
        Deno.args,
        envOf(),
        (s) => Deno.stdout.writeSync(enc.encode(s)),
        (s) => Deno.stderr.writeSync(enc.encode(s)),
      ),
    );
  } catch (e) {
    console.error(`systemctl stand-in: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
