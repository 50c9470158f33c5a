/**
 * Waiting for a network device to go away, told by the kernel: an rtnetlink
 * socket in the RTMGRP_LINK group receives RTM_DELLINK with the device's
 * name the moment it is unregistered (rtnetlink(7)). No polling: the socket
 * is read on a worker thread, with a short receive timeout only so that the
 * wait can also end when the caller no longer needs it.
 */
import { libc } from "./libc.ts";
import { pathExists } from "./fsutil.ts";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
const RTMGRP_LINK = 1;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const RTM_DELLINK = 17;
const IFLA_IFNAME = 3;
const NLMSG_HDRLEN = 16;
const IFINFOMSG_LEN = 16;
/** How long one read waits before looking at `until` again. */
const READ_TIMEOUT_US = 20_000;

const exists = (name: string) => pathExists(`/sys/class/net/${name}`);
const decoder = new TextDecoder();

/** The names of the links an rtnetlink datagram reports deleted. */
export function deletedLinks(buf: Uint8Array, length: number): string[] {
  const view = new DataView(buf.buffer, buf.byteOffset, length);
  const names: string[] = [];
  for (let off = 0; off + NLMSG_HDRLEN <= length;) {
    const len = view.getUint32(off, true);
    if (len < NLMSG_HDRLEN || off + len > length) break;
    if (view.getUint16(off + 4, true) === RTM_DELLINK) {
      for (let a = off + NLMSG_HDRLEN + IFINFOMSG_LEN; a + 4 <= off + len;) {
        const alen = view.getUint16(a, true);
        if (alen < 4) break;
        if (view.getUint16(a + 2, true) === IFLA_IFNAME) {
          const raw = buf.subarray(a + 4, a + alen);
          const nul = raw.indexOf(0);
          names.push(decoder.decode(nul < 0 ? raw : raw.subarray(0, nul)));
        }
        a += (alen + 3) & ~3;
      }
    }
    off += (len + 3) & ~3;
  }
  return names;
}

/**
 * Resolves once the device `name` no longer exists in this network namespace,
 * or once `until` settles, whichever comes first. The subscription is made
 * before this returns its promise, so a deletion that the caller starts
 * afterwards is never missed. Where no rtnetlink socket can be had, it waits
 * for `until`.
 */
export function linkGone(name: string, until: Promise<unknown>): Promise<void> {
  let stop = false;
  const settled = until.then(() => {}, () => {}).finally(() => {
    stop = true;
  });
  let c: ReturnType<typeof libc>;
  try {
    c = libc();
  } catch {
    return settled;
  }
  const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return settled;
  const timeval = new BigInt64Array([0n, BigInt(READ_TIMEOUT_US)]);
  const addr = new Uint8Array(12);
  new DataView(addr.buffer).setUint16(0, AF_NETLINK, true);
  new DataView(addr.buffer).setUint32(8, RTMGRP_LINK, true);
  if (
    c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, new Uint8Array(timeval.buffer), 16) < 0 ||
    c.bind(fd, addr, addr.length) < 0
  ) {
    c.close(fd);
    return settled;
  }
  if (!exists(name)) {
    c.close(fd);
    return Promise.resolve();
  }
  const buf = new Uint8Array(32 * 1024);
  return (async () => {
    let fastFailures = 0;
    try {
      while (!stop) {
        const t0 = performance.now();
        const n = Number(await c.read_blocking(fd, buf, BigInt(buf.length)));
        if (n > 0) {
          fastFailures = 0;
          if (deletedLinks(buf, n).includes(name)) return;
          continue;
        }
        // A timeout, or an overflow that may have dropped the message: look.
        if (!exists(name)) return;
        // An error that returns at once (not a timeout) would spin: stop reading.
        if (performance.now() - t0 < READ_TIMEOUT_US / 4000 && ++fastFailures > 3) {
          await settled;
          return;
        }
      }
    } finally {
      c.close(fd);
    }
  })();
}
