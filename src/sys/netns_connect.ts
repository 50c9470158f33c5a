/**
 * `rkl __netns-connect NETNS PORT`: the helper a port forward runs per
 * connection. It enters the network namespace pinned at NETNS (setns(2) on
 * the only JS thread, which is the thread Deno's sockets are made on), opens
 * TCP to 127.0.0.1:PORT there, and copies stdin to the socket and the
 * socket to stdout; EOF on stdin half-closes the socket. Connected, it
 * says "connected" on stderr (the peer may be waiting to be spoken to
 * first); a failure to connect is one line on stderr and exit code 1.
 *
 * A process of its own because a namespace belongs to a thread: the daemon
 * itself never leaves the host's network namespace.
 */
import { cstr, errno, libc } from "./libc.ts";
import { CLONE_NEWNET, O_CLOEXEC, O_RDONLY } from "./syscalls.ts";

function fail(message: string): never {
  Deno.stderr.writeSync(new TextEncoder().encode(message + "\n"));
  Deno.exit(1);
}

export async function netnsConnect(args: string[]): Promise<never> {
  const [netns, portText] = args;
  const port = Number(portText);
  if (!netns?.startsWith("/") || !/^\d{1,5}$/.test(portText ?? "") || port < 1 || port > 65535) {
    fail("usage: rkl __netns-connect /path/to/netns PORT");
  }
  const L = libc();
  const fd = L.open(cstr(netns), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) fail(`cannot open ${netns}: errno ${errno()}`);
  if (L.setns(fd, CLONE_NEWNET) < 0) fail(`cannot enter ${netns}: errno ${errno()}`);
  L.close(fd);
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch (e) {
    fail(`dial tcp 127.0.0.1:${port}: ${(e as Error).message}`);
  }
  Deno.stderr.writeSync(new TextEncoder().encode("connected\n"));
  const up = (async () => {
    const buf = new Uint8Array(32 * 1024);
    for (;;) {
      const n = await Deno.stdin.read(buf);
      if (n === null) break;
      let off = 0;
      while (off < n) off += await conn.write(buf.subarray(off, n));
    }
    await conn.closeWrite();
  })().catch(() => {});
  try {
    const buf = new Uint8Array(32 * 1024);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      let off = 0;
      while (off < n) off += await Deno.stdout.write(buf.subarray(off, n));
    }
  } catch { /* reset: the end */ }
  await Promise.race([up, new Promise((r) => setTimeout(r, 100))]);
  Deno.exit(0);
}
