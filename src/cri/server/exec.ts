/**
 * The RuntimeService's exec calls: ExecSync runs a command and answers with
 * its output; Exec, Attach and PortForward answer with a URL on the
 * streaming server (src/cri/streaming/), which starts at the first of them.
 */
import type { Host } from "../../workloads/host.ts";
import { type ContainerRecord, quickRefresh } from "../../workloads/container.ts";
import { execSync } from "../../workloads/exec.ts";
import { CriError, type Handler, invalid, type Message, precondition, Status } from "../grpc.ts";
import type { StreamingServer } from "../streaming/server.ts";
import { StreamError } from "../streaming/types.ts";
import { type CriOptions, findContainer, findSandbox, ready } from "./_common.ts";

export interface ExecGroup {
  handlers: Record<string, Handler>;
  /** Stops the streaming server, if it was started. */
  close(): Promise<void>;
}

export function execHandlers(
  host: Host,
  options: Pick<CriOptions, "streamingPort" | "log">,
): ExecGroup {
  // The streaming server listens from the first Exec, Attach or PortForward
  // on, and its code (WebSocket, SPDY: node:crypto and node:zlib) is loaded then.
  let streaming: Promise<StreamingServer> | undefined;
  const start = async () => {
    const [{ StreamingServer }, { streamBackend }] = await Promise.all([
      import("../streaming/server.ts"),
      import("../streams.ts"),
    ]);
    return StreamingServer.start(
      streamBackend(host, {
        container: async (id) => {
          let c: ContainerRecord;
          try {
            c = await quickRefresh(host, findContainer(host, id));
          } catch (e) {
            throw new StreamError((e as Error).message, "NotFound");
          }
          if (c.status !== "running") {
            throw new StreamError(`container ${c.name} is ${c.status}, not running`, "BadRequest");
          }
          return c;
        },
        sandbox: (id) => {
          try {
            return findSandbox(host, id);
          } catch (e) {
            throw new StreamError((e as Error).message, "NotFound");
          }
        },
      }),
      { port: options.streamingPort ?? 0, log: options.log },
    );
  };
  const streams = (): Promise<StreamingServer> => {
    if (!streaming) {
      // A start that failed is tried again by the next call, as before.
      streaming = start();
      streaming.catch(() => streaming = undefined);
    }
    return streaming;
  };
  /** The running container an Exec or Attach names, checked before a URL is given out. */
  const streamTarget = async (req: Message) => {
    const c = await quickRefresh(host, findContainer(host, req.container_id));
    if (c.status !== "running") {
      throw precondition(`container ${c.name} is ${c.status}, not running`);
    }
    if (!req.stdin && !req.stdout && !req.stderr) {
      throw invalid("one of stdin, stdout and stderr must be set");
    }
    return c;
  };
  const handlers: Record<string, Handler> = {
    ExecSync: async (req) => {
      const c = await quickRefresh(host, findContainer(host, req.container_id));
      if (c.status !== "running") {
        throw precondition(`container ${c.name} is ${c.status}, not running`);
      }
      const cmd: string[] = req.cmd ?? [];
      if (cmd.length === 0) throw invalid("cmd: must not be empty");
      const timeoutS = Number(req.timeout ?? 0);
      const res = await execSync(host, {
        container: c,
        argv: cmd,
        timeoutMs: timeoutS > 0 ? timeoutS * 1000 : undefined, // 0: no limit
      });
      if (res.timedOut) {
        throw new CriError(
          Status.DEADLINE_EXCEEDED,
          `command ${JSON.stringify(cmd)} timed out after ${timeoutS}s`,
        );
      }
      const enc = new TextEncoder();
      return {
        stdout: enc.encode(res.stdout),
        stderr: enc.encode(res.stderr),
        exit_code: res.code,
      };
    },

    Exec: async (req: Message) => {
      const c = await streamTarget(req);
      const cmd: string[] = req.cmd ?? [];
      if (cmd.length === 0) throw invalid("cmd: must not be empty");
      return {
        url: (await streams()).exec({
          containerId: c.name,
          cmd,
          tty: !!req.tty,
          stdin: !!req.stdin,
          stdout: !!req.stdout,
          stderr: !!req.stderr,
        }),
      };
    },

    Attach: async (req: Message) => {
      const c = await streamTarget(req);
      if (!!req.tty !== !!c.terminal) {
        throw invalid(`tty: container ${c.name} was created with tty ${!!c.terminal}`);
      }
      return {
        url: (await streams()).attach({
          containerId: c.name,
          tty: !!req.tty,
          stdin: !!req.stdin,
          stdout: !!req.stdout,
          stderr: !!req.stderr,
        }),
      };
    },

    PortForward: async (req: Message) => {
      const p = findSandbox(host, req.pod_sandbox_id);
      if (!ready(p)) throw precondition(`sandbox ${p.name} is not ready`);
      const ports = (req.port ?? []).map(Number);
      if (ports.some((n: number) => !Number.isInteger(n) || n < 1 || n > 65535)) {
        throw invalid("port: every port must be from 1 to 65535");
      }
      return { url: (await streams()).portForward({ sandboxId: p.name, ports }) };
    },
  };
  return {
    handlers,
    close: async () => {
      await (await streaming?.catch(() => undefined))?.close();
    },
  };
}
