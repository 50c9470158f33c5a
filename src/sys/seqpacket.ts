/**
 * A client of a unix SOCK_SEQPACKET socket (conmon's attach socket), which
 * Deno's own sockets cannot open: socket(2) and connect(2) through FFI, and
 * reads and writes on worker threads (FFI `nonblocking` calls) so a blocked
 * read never stalls the event loop. `close()` shuts the socket down first,
 * which wakes a read in flight; the descriptor is released only once no
 * call is using it, so it is never reused under a running read.
 */
import { SysError } from "../errors.ts";
import { cstr, errno, libc } from "./libc.ts";
import { O_CLOEXEC, O_PATH } from "./syscalls.ts";

const AF_UNIX = 1;
const SOCK_SEQPACKET = 5;
const SOCK_CLOEXEC = 0o2000000;
const O_DIRECTORY = 0o200000;
const SHUT_WR = 1;
const SHUT_RDWR = 2;
/** sizeof(sun_path) */
const SUN_PATH = 108;

function sockaddr(path: string): Uint8Array {
  const p = new TextEncoder().encode(path);
  const a = new Uint8Array(2 + SUN_PATH);
  new DataView(a.buffer).setUint16(0, AF_UNIX, true);
  a.set(p, 2);
  return a;
}

export class SeqPacketSocket {
  #fd: number;
  #busy = 0;
  #closing = false;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Connects to the socket at `path` (a longer path than sun_path allows goes through /proc/self/fd). */
  static connect(path: string): SeqPacketSocket {
    const L = libc();
    const fd = L.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new SysError("socket", errno(), "AF_UNIX SOCK_SEQPACKET");
    let dirFd = -1;
    try {
      let target = path;
      if (new TextEncoder().encode(path).length >= SUN_PATH) {
        const slash = path.lastIndexOf("/");
        dirFd = L.open(cstr(path.slice(0, slash) || "/"), O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
        if (dirFd < 0) throw new SysError("open", errno(), JSON.stringify(path.slice(0, slash)));
        target = `/proc/self/fd/${dirFd}/${path.slice(slash + 1)}`;
        if (target.length >= SUN_PATH) throw new SysError("connect", 36, JSON.stringify(path));
      }
      const addr = sockaddr(target);
      if (L.connect(fd, addr, addr.length) < 0) {
        throw new SysError("connect", errno(), JSON.stringify(path));
      }
      return new SeqPacketSocket(fd);
    } catch (e) {
      L.close(fd);
      throw e;
    } finally {
      if (dirFd >= 0) L.close(dirFd);
    }
  }

  /** Two connected ends, for a peer in this process (the tests' stand-in for conmon). */
  static pair(): [SeqPacketSocket, SeqPacketSocket] {
    const fds = new Int32Array(2);
    if (libc().socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0) {
      throw new SysError("socketpair", errno(), "AF_UNIX SOCK_SEQPACKET");
    }
    return [new SeqPacketSocket(fds[0]), new SeqPacketSocket(fds[1])];
  }

  async #use<T>(fn: (fd: number) => Promise<T>): Promise<T | undefined> {
    if (this.#closing) return undefined;
    this.#busy++;
    try {
      return await fn(this.#fd);
    } finally {
      this.#busy--;
      if (this.#closing && this.#busy === 0) this.#release();
    }
  }

  /**
   * One packet (at most `max` bytes), or null at the end.
   *
   * A peer that closes while packets rkl sent it are still unread (conmon
   * ending with the client's last keystrokes in its queue) leaves ECONNRESET
   * on this socket, and Linux reports it on the next read even when that
   * peer's last packets are queued here; the read after that returns them,
   * then 0. So a failed read is tried again, and only a second failure in a
   * row ends the stream. After ECONNRESET the retry returns at once (the
   * error is reported once and the peer has shut its side down); after any
   * other error it is an ordinary read. Measured before this: `crictl exec
   * -it … sh -c 'tty; …; echo ok'` under script(1) lost all but its first
   * packets in 14 of 300 runs, although conmon's strace showed every byte
   * sent; none of 300 after.
   */
  async read(max = 8193): Promise<Uint8Array | null> {
    const buf = new Uint8Array(max);
    for (let failures = 0; failures < 2; failures++) {
      const n = await this.#use((fd) => libc().read_blocking(fd, buf, BigInt(max)));
      if (n === undefined || n === 0n) return null;
      if (n > 0n) return buf.subarray(0, Number(n));
    }
    return null;
  }

  /** Sends `data` as one packet; false once the socket is gone. */
  async write(data: Uint8Array): Promise<boolean> {
    const copy = new Uint8Array(data);
    const n = await this.#use((fd) => libc().write_blocking(fd, copy, BigInt(copy.length)));
    return n !== undefined && n === BigInt(copy.length);
  }

  /** Ends rkl's direction: the peer reads EOF. */
  shutdownWrite(): void {
    if (!this.#closing) libc().shutdown(this.#fd, SHUT_WR);
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    libc().shutdown(this.#fd, SHUT_RDWR);
    if (this.#busy === 0) this.#release();
  }

  #release(): void {
    if (this.#fd < 0) return;
    libc().close(this.#fd);
    this.#fd = -1;
  }
}
