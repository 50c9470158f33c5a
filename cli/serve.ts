/**
 * The daemon's side of the thin client (cli/remote.ts): RUN_ROOT/cli.sock,
 * mode 0600, made once the daemon holds the run root. Each connection
 * carries one command; it runs through the same `main` as in-process, with
 * the daemon's Host (one store, one lock queue shared with the static-pod
 * work) and its output and working directory taken from the request. A
 * client that goes away cancels the command's creates (they roll back, as
 * after ^C in-process).
 *
 * The request is hostile until checked: its shape and sizes, the build, the
 * state roots recomputed from its own argv/env/cwd, and the environment that
 * decides what rkl does. Anything that differs gets `fallback`, and the
 * client does the work itself.
 */
import { RklError } from "../src/errors.ts";
import { resolveRuntime } from "../src/oci/runtime.ts";
import { withAbort } from "../src/cancel.ts";
import { trace } from "../src/trace.ts";
import { acceptLoop } from "../src/sys/accept.ts";
import type { Host } from "../src/workloads/host.ts";
import { type Io, withIo } from "./io.ts";
import {
  MAX_REQUEST,
  type Plan,
  PROTOCOL,
  relevantEnv,
  rootsOf,
  servable,
  socketPath,
} from "./remote.ts";

/** Commands served at once; beyond that, clients do the work themselves. */
const MAX_SERVED = 32;
/** How long a client may take to send its request line. */
const REQUEST_TIMEOUT_MS = 10_000;

export interface ServeOptions {
  /** `VERSION+COMMIT` of this rkl; a client of another build is not served. */
  build: string;
  log(message: string): void;
}

interface Request {
  argv: string[];
  cwd: string;
  root: string;
  runRoot: string;
  env: Record<string, string>;
  /** compose commands only: the client's whole environment. */
  composeEnv?: Record<string, string>;
}

/** The request's plan when it may be served here, or why it may not. */
export function admit(
  raw: unknown,
  host: Pick<Host, "paths" | "runtime">,
  o: Pick<ServeOptions, "build">,
  ownEnv: Record<string, string>,
): { plan: Plan } | { why: string } {
  const no = (why: string) => ({ why });
  const r = raw as Partial<Request & { v: unknown; build: unknown }>;
  if (typeof r !== "object" || r === null) return no("a request that is not an object");
  if (r.v !== PROTOCOL) return no(`protocol ${JSON.stringify(r.v)}`);
  if (r.build !== o.build) return no(`another rkl build (${JSON.stringify(r.build)})`);
  const strings = (xs: unknown): xs is string[] =>
    Array.isArray(xs) && xs.every((x) => typeof x === "string" && !x.includes("\0"));
  const stringMap = (m: unknown): m is Record<string, string> =>
    typeof m === "object" && m !== null && !Array.isArray(m) && strings(Object.values(m));
  if (!strings(r.argv) || r.argv.length > 1000) return no("argv");
  if (typeof r.cwd !== "string" || !r.cwd.startsWith("/") || r.cwd.includes("\0")) return no("cwd");
  if (!stringMap(r.env)) return no("env");
  const plan = servable(r.argv);
  if (!plan) return no("a command the daemon does not serve");
  if (plan.command === "compose") {
    if (!stringMap(r.composeEnv)) return no("composeEnv");
    // The same variables the daemon compares, or the interpolation would differ from them.
    if (JSON.stringify(relevantEnv(r.composeEnv)) !== JSON.stringify(relevantEnv(r.env))) {
      return no("composeEnv");
    }
  }
  const roots = rootsOf(plan.globals, r.env, r.cwd);
  if (roots.root !== host.paths.root || roots.runRoot !== host.paths.runRoot) {
    return no("other state roots");
  }
  if (JSON.stringify(relevantEnv(r.env)) !== JSON.stringify(relevantEnv(ownEnv))) {
    return no("another environment");
  }
  // The runtime the client would pick, resolved here (same PATH, checked
  // above): `--runtime youki` is served by a daemon that runs youki anyway.
  const theirs = plan.globals.runtime ?? r.env.RKL_RUNTIME;
  if (theirs?.includes("/") && !theirs.startsWith("/")) return no("a relative runtime path");
  let rt: { name: string; binary: string };
  try {
    rt = resolveRuntime(theirs);
  } catch {
    return no("another runtime"); // the client says why, in-process
  }
  if (rt.name !== host.runtime.name || rt.binary !== host.runtime.binary) {
    return no("another runtime");
  }
  return { plan };
}

/**
 * `[GLOBALS…] stats --no-stream` and nothing else (servable() read the
 * globals): the daemon runs it without building the CLI, as the command's
 * action would (cli/commands/stats.ts showStats), with main()'s error
 * reporting. Anything else, flags, names or help, goes through main().
 */
export function plainStatsNoStream(argv: string[]): boolean {
  if (argv.at(-2) !== "stats" || argv.at(-1) !== "--no-stream") return false;
  // Before them, global options only (`stats stats --no-stream` names a container).
  const before = argv.slice(0, -2);
  for (let i = 0; i < before.length; i++) {
    const a = before[i];
    if (a === "--debug" || /^--(root|run-root|runtime)=/.test(a)) continue;
    if (!["--root", "--run-root", "--runtime"].includes(a) || ++i >= before.length) return false;
  }
  return servable(argv)?.command === "stats";
}

async function servedStats(host: Host, debug: boolean): Promise<number> {
  try {
    const { showStats } = await import("./commands/stats.ts");
    await showStats(() => host, [], { stream: false });
    return 0;
  } catch (e) {
    const { reportError } = await import("./direct.ts");
    return reportError(e, debug);
  }
}

/** Reads one line (without its newline), at most `max` bytes; undefined at EOF or when too long. */
async function readLine(conn: Deno.Conn, max: number): Promise<string | undefined> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const buf = new Uint8Array(16 * 1024);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return undefined;
    const nl = buf.subarray(0, n).indexOf(10);
    const part = buf.slice(0, nl >= 0 ? nl : n);
    chunks.push(part);
    size += part.length;
    if (size > max) return undefined;
    if (nl >= 0) {
      // The protocol has nothing after the request line; more bytes are ignored.
      const all = new Uint8Array(size);
      let off = 0;
      for (const c of chunks) {
        all.set(c, off);
        off += c.length;
      }
      return new TextDecoder().decode(all);
    }
  }
}

export async function serveCli(host: Host, o: ServeOptions): Promise<{ close(): Promise<void> }> {
  const path = socketPath(host.paths.runRoot);
  try {
    // The daemon lock is held: a socket here is a dead daemon's. Anything else is not ours.
    if (!Deno.lstatSync(path).isSocket) {
      throw new RklError("EEXIST", `Cannot serve CLI commands: ${path} exists and is no socket`);
    }
    Deno.removeSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const listener = Deno.listen({ transport: "unix", path });
  Deno.chmodSync(path, 0o600);
  const { main } = await import("./app.ts");
  const active = new Set<Promise<void>>();

  const serve = async (conn: Deno.UnixConn) => {
    const enc = new TextEncoder();
    let sending = Promise.resolve();
    let gone = false;
    const send = (msg: Record<string, unknown>) => {
      const bytes = enc.encode(JSON.stringify(msg) + "\n");
      sending = sending.then(async () => {
        if (gone) return;
        try {
          for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
        } catch {
          gone = true;
        }
      });
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const line = await Promise.race([
        readLine(conn, MAX_REQUEST),
        new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), REQUEST_TIMEOUT_MS)),
      ]);
      clearTimeout(timer);
      if (line === undefined) return;
      trace("serve: request read");
      let raw: unknown;
      try {
        raw = JSON.parse(line);
      } catch {
        raw = undefined;
      }
      const admitted = active.size > MAX_SERVED
        ? { why: "busy" }
        : admit(raw, host, o, Deno.env.toObject());
      if ("why" in admitted) {
        o.log(`cli: not served (${admitted.why}); the client runs it`);
        send({ fallback: admitted.why });
        return;
      }
      trace("serve: admitted");
      const { plan } = admitted;
      const req = raw as Request;
      // The client sends nothing more: EOF means it went away (^C): cancel the creates.
      // Only while the command runs: a context that outlives it must not see an abort.
      const ac = new AbortController();
      const io: Io = {
        stdout: (t) => send({ o: t }),
        stderr: (t) => send({ e: t }),
        cwd: req.cwd,
        env: req.composeEnv,
      };
      (async () => {
        const b = new Uint8Array(512);
        try {
          while ((await conn.read(b)) !== null) { /* ignored */ }
        } catch { /* reset */ }
        if (!io.closed) ac.abort("the client went away");
      })();
      let code: number;
      const warn = (m: string) => io.stderr(`warning: ${m}\n`);
      const run = plainStatsNoStream(req.argv)
        ? () =>
          servedStats(
            { ...host, warn },
            req.argv.includes("--debug") || Deno.env.get("RKL_DEBUG") === "1",
          )
        : () => main(req.argv, { host: (warn) => ({ ...host, warn }) });
      try {
        code = await withIo(io, () => withAbort(ac.signal, run));
      } finally {
        io.closed = true;
      }
      send({ exit: code });
      trace("serve: command done");
      o.log(`cli: served ${plan.command} ${plan.verb} (exit ${code})`);
    } catch (e) {
      o.log(`cli: ${(e as Error).message}`);
      send({ e: `rkl: ${(e as Error).message}\n` });
      send({ exit: 1 });
    } finally {
      clearTimeout(timer);
      await sending;
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };

  // Out of descriptors (EMFILE), the loop waits and tries again: the socket keeps serving.
  const accepting = acceptLoop(listener, (conn) => {
    const p = serve(conn).finally(() => active.delete(p));
    active.add(p);
  }, { label: "cli", log: o.log });

  return {
    async close() {
      try {
        listener.close();
      } catch { /* closed */ }
      await accepting;
      await Promise.all(active);
      // A served `pod rm` answers before its teardown ends (src/workloads/pod/lifecycle.ts).
      await (await import("../src/workloads/pod/lifecycle.ts")).removalsSettled();
      try {
        Deno.removeSync(path);
      } catch { /* gone */ }
    },
  };
}
