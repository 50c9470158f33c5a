/**
 * The CRI socket, with the CRI itself loaded on the first connection. grpc-js,
 * protobufjs and the parsed proto cost a daemon about 10 MB and 100 ms of
 * start-up; a daemon that only runs static pods never pays them, and one a
 * kubelet talks to pays them once, at its first call. The socket is listened on
 * here (mode 0600 from the start, as before), and each connection is handed to
 * grpc-js's server through its connection injector, so nothing is proxied.
 */
import { createServer, type Socket } from "node:net";

export interface Loaded {
  inject(connection: Socket): void;
  close(): Promise<void>;
}

export interface LazyCri {
  socket: string;
  /** Whether a connection has loaded the CRI yet. */
  loaded(): boolean;
  close(): Promise<void>;
}

export async function serveCriOnDemand(
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
  const server = createServer({ pauseOnConnect: true }, (conn) => {
    loading ??= load().catch((e) => {
      log(`CRI: cannot load the gRPC server: ${(e as Error).message}`);
      loading = undefined; // the next connection tries again
      return undefined;
    });
    loading.then((l) => {
      if (!l) return conn.destroy();
      l.inject(conn);
      conn.resume();
    });
  });
  // The directory is 0700 until the socket is made 0600.
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socket, () => {
      server.off("error", reject);
      resolve();
    });
  });
  Deno.chmodSync(socket, 0o600);
  return {
    socket,
    loaded: () => loading !== undefined,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      const l = await loading;
      await l?.close();
      try {
        Deno.removeSync(socket);
      } catch { /* already gone */ }
    },
  };
}
