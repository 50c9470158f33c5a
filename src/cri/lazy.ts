/**
 * The CRI socket, with the CRI itself loaded on the first connection. The gRPC
 * server (src/cri/h2/), the codec and its proto descriptor cost a daemon memory
 * and start-up time; a daemon that only runs static pods never pays them, and
 * one a kubelet talks to pays them once, at its first call. The socket is
 * listened on here (mode 0600 from the start, as before), and each connection
 * is handed to the HTTP/2 server as it is, so nothing is proxied.
 *
 * Connections are accepted by src/sys/accept.ts's loop, which outlives a full
 * descriptor table (EMFILE: it waits and tries again). node:net's server is
 * not used: under Deno 2.9 it stops accepting for good after one failed
 * accept.
 */
import { acceptLoop } from "../sys/accept.ts";

export interface Loaded {
  /** Serves one accepted connection (its owner from now on). */
  inject(connection: Deno.UnixConn): void;
  close(): Promise<void>;
}

export interface LazyCri {
  socket: string;
  /** Whether a connection has loaded the CRI yet. */
  loaded(): boolean;
  close(): Promise<void>;
}

export function serveCriOnDemand(
  socket: string,
  load: () => Promise<Loaded>,
  log: (line: string) => void,
): Promise<LazyCri> {
  try {
    Deno.removeSync(socket);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const dir = socket.slice(0, socket.lastIndexOf("/")) || "/";
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  let loading: Promise<Loaded | undefined> | undefined;
  // The directory is 0700 until the socket is made 0600.
  const listener = Deno.listen({ transport: "unix", path: socket });
  Deno.chmodSync(socket, 0o600);
  const accepting = acceptLoop(listener, (conn) => {
    loading ??= load().catch((e) => {
      log(`CRI: cannot load the gRPC server: ${(e as Error).message}`);
      loading = undefined; // the next connection tries again
      return undefined;
    });
    loading.then((l) => {
      if (l) return l.inject(conn);
      try {
        conn.close();
      } catch { /* closed */ }
    });
  }, { label: "CRI", log });
  return Promise.resolve({
    socket,
    loaded: () => loading !== undefined,
    close: async () => {
      try {
        listener.close();
      } catch { /* closed */ }
      await accepting;
      const l = await loading;
      await l?.close();
      try {
        Deno.removeSync(socket);
      } catch { /* already gone */ }
    },
  });
}
