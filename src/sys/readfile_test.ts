import assert from "node:assert/strict";
import {
  closeFd,
  FileReadError,
  MiB,
  openRegular,
  readAtMost,
  readBounded,
  readStreamBounded,
  readTextBounded,
} from "./readfile.ts";

function refused(fn: () => unknown, reason: RegExp): FileReadError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof FileReadError, String(e));
    assert.match(e.reason, reason);
    assert.ok(!e.message.includes("\n"));
    return e;
  }
  assert.fail("not refused");
}

Deno.test("readBounded() refuses /dev/zero and /dev/urandom as character devices, reading nothing", () => {
  for (const dev of ["/dev/zero", "/dev/urandom", "/dev/null"]) {
    const e = refused(
      () => readBounded(dev, { max: MiB }),
      /^not a regular file \(a character device\)$/,
    );
    assert.equal(e.message, `Cannot read ${dev}: not a regular file (a character device)`);
  }
});

Deno.test("readBounded() refuses a directory", () => {
  const d = Deno.makeTempDirSync();
  try {
    refused(() => readBounded(d, { max: MiB }), /^not a regular file \(a directory\)$/);
  } finally {
    Deno.removeSync(d, { recursive: true });
  }
});

Deno.test("readBounded() reads up to max bytes and refuses one byte more", () => {
  const d = Deno.makeTempDirSync();
  try {
    Deno.writeFileSync(`${d}/ok`, new Uint8Array(1000).fill(65));
    assert.equal(readBounded(`${d}/ok`, { max: 1000 }).length, 1000);
    assert.equal(readTextBounded(`${d}/ok`, { max: 5000 }), "A".repeat(1000));
    Deno.writeFileSync(`${d}/big`, new Uint8Array(1001));
    const e = refused(() => readBounded(`${d}/big`, { max: 1000 }), /^larger than 1000 bytes$/);
    assert.equal(e.message, `Cannot read ${d}/big: larger than 1000 bytes`);
    Deno.writeFileSync(`${d}/mib`, new Uint8Array(MiB + 1));
    refused(() => readBounded(`${d}/mib`, { max: MiB }), /^larger than 1048576 bytes \(1 MiB\)$/);
    Deno.writeFileSync(`${d}/empty`, new Uint8Array(0));
    assert.equal(readBounded(`${d}/empty`, { max: 10 }).length, 0);
  } finally {
    Deno.removeSync(d, { recursive: true });
  }
});

Deno.test("readAtMost() reads past a stale size hint only up to max + 1 bytes", () => {
  // /proc files fstat as size 0 and a file can grow after fstat: the read, not fstat, decides.
  const d = Deno.makeTempDirSync();
  try {
    Deno.writeFileSync(`${d}/f`, new Uint8Array(100_000).fill(1));
    const { fd } = openRegular(`${d}/f`);
    try {
      assert.equal(readAtMost(fd, 50_000, 0).length, 50_001);
    } finally {
      closeFd(fd);
    }
    const again = openRegular(`${d}/f`);
    try {
      assert.equal(readAtMost(again.fd, 200_000, 0).length, 100_000);
    } finally {
      closeFd(again.fd);
    }
  } finally {
    Deno.removeSync(d, { recursive: true });
  }
});

// Symlinks (follow, and O_NOFOLLOW) are tested in tests/e2e/inputs_test.ts: the unit
// permission set can make none.
Deno.test("readBounded() says notFound for a missing file only", () => {
  const d = Deno.makeTempDirSync();
  try {
    const e = refused(() => readBounded(`${d}/none`, { max: 10 }), /^no such file$/);
    assert.ok(e.notFound);
    assert.ok(!refused(() => readBounded(d, { max: 10 }), /directory/).notFound);
  } finally {
    Deno.removeSync(d, { recursive: true });
  }
});

Deno.test("readStreamBounded() stops at the cap", async () => {
  const stream = (n: number) =>
    new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < n; i++) c.enqueue(new Uint8Array(100));
        c.close();
      },
    });
  assert.equal((await readStreamBounded(stream(3), 300))?.length, 300);
  assert.equal(await readStreamBounded(stream(4), 300), undefined);
  // An endless stream ends at the cap too.
  const endless = new ReadableStream<Uint8Array>({
    pull(c) {
      c.enqueue(new Uint8Array(4096));
    },
  });
  assert.equal(await readStreamBounded(endless, MiB), undefined);
});
