/**
 * What runs behind the CRI's streams (streaming/server.ts): exec and attach
 * go to the core's one exec path (workloads/exec.ts: the runtime's exec with
 * pipes, or conmon in exec mode for a terminal; attach through the
 * container's conmon attach socket); port forward runs `rkl __netns-connect`
 * per connection, in the sandbox's network namespace (a host-network sandbox
 * is dialled directly).
 */
import type { Host } from "../workloads/host.ts";
import { type ContainerRecord, quickRefresh } from "../workloads/container.ts";
import type { PodRecord } from "../workloads/pod.ts";
import { attachStream, execStream } from "../workloads/exec.ts";
import { ConflictError } from "../errors.ts";
import { connDuplex, type Duplex } from "./streaming/bytes.ts";
import { type StreamBackend, StreamError } from "./streaming/server.ts";

export interface StreamLookup {
  /** The running CRI container `id` names (NotFound/FailedPrecondition as StreamError). */
  container(id: string): Promise<ContainerRecord>;
  sandbox(id: string): PodRecord;
}

/** The core's error as the metav1.Status reason the client is shown. */
function streamError(e: unknown): StreamError {
  if (e instanceof StreamError) return e;
  return new StreamError(
    (e as Error).message,
    e instanceof ConflictError ? "BadRequest" : "InternalError",
  );
}

export function streamBackend(host: Host, lookup: StreamLookup): StreamBackend {
  return {
    async exec(p, io) {
      const c = await lookup.container(p.containerId);
      try {
        return await execStream(host, {
          container: c,
          argv: p.cmd,
          tty: p.tty,
          stdin: p.stdin,
        }, io);
      } catch (e) {
        throw streamError(e);
      }
    },
    async attach(p, io) {
      const c = await lookup.container(p.containerId);
      try {
        await attachStream(host, c, { tty: p.tty }, io);
      } catch (e) {
        throw streamError(e);
      }
    },
    dial(sandboxId, port) {
      const pod = lookup.sandbox(sandboxId);
      if (pod.hostNetwork || !pod.netns) return dialHost(port);
      return dialInNetns(host, pod.netns, port);
    },
  };
}

async function dialHost(port: number): Promise<Duplex & { closeWrite(): Promise<void> }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  return { ...connDuplex(conn), closeWrite: () => conn.closeWrite() };
}

/** A connection to 127.0.0.1:port in `netns`, through the `__netns-connect` helper. */
async function dialInNetns(
  host: Host,
  netns: string,
  port: number,
): Promise<Duplex & { closeWrite(): Promise<void> }> {
  const argv = host.selfArgv;
  if (!argv) throw new StreamError("this host cannot start helper processes");
  // The path comes from a record on disk: only a pin rkl makes is entered.
  const pins = `${host.paths.runRoot}/netns/`;
  if (!netns.startsWith(pins) || netns.slice(pins.length).includes("/")) {
    throw new StreamError(`sandbox netns ${JSON.stringify(netns)} is not under ${pins}`);
  }
  const child = new Deno.Command(argv[0], {
    args: [...argv.slice(1), "__netns-connect", netns, String(port)],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const writer = child.stdin.getWriter();
  // Its first stderr line says "connected", or why not.
  const err = await new Response(child.stderr).body!.pipeThrough(new TextDecoderStream())
    .getReader().read();
  const said = (err.value ?? "").trim();
  if (said !== "connected") {
    const status = await child.status;
    throw new StreamError(said || `the connect helper exited with ${status.code}`);
  }
  return {
    async read() {
      const r = await reader.read().catch(() => ({ done: true, value: undefined }));
      return r.done ? null : r.value!;
    },
    write: (b) => writer.write(b),
    closeWrite: () => writer.close().catch(() => {}),
    close() {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      void child.status.catch(() => {});
    },
  };
}

export { quickRefresh };
