/**
 * SeqPacketSocket (conmon's attach socket client) against a peer in this
 * process: packets stay whole, and a peer that closes with rkl's packets
 * unread still has its own last packets read before the end.
 */
import assert from "node:assert/strict";
import { SeqPacketSocket } from "../../src/sys/seqpacket.ts";

const text = (b: Uint8Array | null) => b === null ? null : new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("SeqPacketSocket: whole packets each way; the peer's shutdown reads as the end", async () => {
  const [rkl, peer] = SeqPacketSocket.pair();
  try {
    assert.ok(await rkl.write(bytes("\x01ab")));
    assert.ok(await rkl.write(bytes("\x01cd")));
    assert.equal(text(await peer.read()), "\x01ab");
    assert.equal(text(await peer.read()), "\x01cd");
    peer.shutdownWrite();
    assert.equal(await rkl.read(), null);
  } finally {
    rkl.close();
    peer.close();
  }
});

Deno.test("SeqPacketSocket: a peer that closes with rkl's input unread still delivers its last output", async () => {
  const [rkl, peer] = SeqPacketSocket.pair();
  try {
    // conmon's last output, then its exit with the client's keystrokes still in its queue:
    // Linux reports ECONNRESET on rkl's next read although the output is queued here.
    assert.ok(await peer.write(bytes("\x02/dev/pts/0\r\n")));
    assert.ok(await peer.write(bytes("\x02tty-ok\r\n")));
    assert.ok(await rkl.write(bytes("\x00")));
    peer.close();
    assert.equal(text(await rkl.read()), "\x02/dev/pts/0\r\n");
    assert.equal(text(await rkl.read()), "\x02tty-ok\r\n");
    assert.equal(await rkl.read(), null);
    assert.equal(await rkl.read(), null, "the end stays the end");
  } finally {
    rkl.close();
  }
});
