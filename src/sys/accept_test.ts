import assert from "node:assert/strict";
import { acceptBackoffMs, acceptLoop } from "./accept.ts";

Deno.test("acceptBackoffMs() doubles from 10 ms to at most 1 s", () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8, 50].map((n) => acceptBackoffMs(n)),
    [10, 20, 40, 80, 160, 320, 640, 1000, 1000],
  );
  assert.equal(acceptBackoffMs(3, 25), 25);
});

/** A listener whose accept() answers from a script: a connection, an error to throw. */
function scripted(script: (Error | string)[]): Deno.Listener {
  const fake = {
    accept() {
      const next = script.shift() ?? new Deno.errors.BadResource("Listener has been closed");
      return next instanceof Error
        ? Promise.reject(next)
        : Promise.resolve({ name: next } as unknown as Deno.Conn);
    },
  };
  return fake as unknown as Deno.Listener;
}

Deno.test("acceptLoop() waits out EMFILE and ENFILE, serves again, and ends when the listener is closed", async () => {
  const emfile = () =>
    Object.assign(new Error("Too many open files (os error 24)"), { code: "EMFILE" });
  const enfile = () =>
    Object.assign(new Error("Too many open files in system (os error 23)"), { code: "ENFILE" });
  const served: string[] = [];
  const log: string[] = [];
  const t0 = Date.now();
  await acceptLoop(
    scripted(["a", emfile(), emfile(), enfile(), "b", emfile(), "c"]),
    (c) => {
      served.push((c as unknown as { name: string }).name);
    },
    { label: "test", log: (l) => log.push(l) },
  );
  const took = Date.now() - t0;
  assert.deepEqual(served, ["a", "b", "c"]);
  // 10 + 20 + 40 ms for the first run of failures, 10 ms for the second.
  assert.ok(took >= 75, `${took} ms`);
  assert.deepEqual(log.map((l) => l.replace(/\d+ ms/, "N ms")), [
    "test: cannot accept a connection: Too many open files (os error 24); retrying",
    "test: accepting again after 3 failed tries in N ms",
    "test: cannot accept a connection: Too many open files (os error 24); retrying",
    "test: accepting again after 1 failed tries in N ms",
  ]);
});

Deno.test("acceptLoop() on a real listener: a listener closed while an accept is pending ends it", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const got: Deno.Conn[] = [];
  const loop = acceptLoop(l, (c) => {
    got.push(c);
  }, { label: "test" });
  const c = await Deno.connect({ hostname: "127.0.0.1", port: (l.addr as Deno.NetAddr).port });
  while (got.length === 0) await new Promise((r) => setTimeout(r, 5));
  l.close();
  await loop;
  c.close();
  got[0].close();
});

Deno.test("acceptLoop() waits for a promise serve() returns before the next accept", async () => {
  const order: string[] = [];
  await acceptLoop(scripted(["a", "b"]), (c) => {
    const name = (c as unknown as { name: string }).name;
    order.push(`serve ${name}`);
    return new Promise((r) =>
      setTimeout(() => {
        order.push(`paced ${name}`);
        r();
      }, 20)
    );
  }, { label: "test" });
  assert.deepEqual(order, ["serve a", "paced a", "serve b", "paced b"]);
});
