/**
 * The daemon's three listeners through a full descriptor table (issue 29):
 * the CRI's gRPC socket, the thin client's cli.sock and the CRI streaming
 * port. A child process serves all three with a limit of 96 descriptors,
 * then opens /dev/null until it has none left. Clients connect meanwhile
 * (their connections wait in the kernel's queue, unaccepted); once the child
 * lets 20 descriptors go, every one of them must be answered. No root needed.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { serviceDefinition } from "../../src/cri/grpc.ts";
import { REPO } from "../_helpers/requires.ts";

const CHILD = (dir: string) => `
import { serveCri } from "${REPO}/src/cri/grpc.ts";
import { serveCli } from "${REPO}/cli/serve.ts";
import { StreamingServer } from "${REPO}/src/cri/streaming/server.ts";
// Deno sets up its signal thread at the first listener; with no descriptor left it could not.
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
const log = (l) => console.error(l);
const cri = await serveCri({
  runtime: { Version: () => Promise.resolve({ version: "0.1.0", runtime_name: "emfile" }) },
  image: {},
}, { socket: "${dir}/cri.sock", log });
const host = { paths: { root: "${dir}/root", runRoot: "${dir}" }, runtime: { name: "x", binary: "/x" } };
const cli = await serveCli(host, { build: "test", log });
const streaming = StreamingServer.start({
  exec: () => Promise.resolve(0),
  attach: () => Promise.resolve(),
  dial: () => Promise.reject(new Error("no")),
});
const files = [];
try {
  for (;;) files.push(Deno.openSync("/dev/null"));
} catch { /* EMFILE: the table is full */ }
console.log(JSON.stringify({ port: Number(new URL(streaming.address).port), held: files.length }));
const buf = new Uint8Array(16);
while ((await Deno.stdin.read(buf)) !== null) {
  for (const f of files.splice(0, 20)) f.close();
  console.log("released");
}
await cri.close();
await cli.close();
await streaming.close();
`;

async function readLine(r: ReadableStreamDefaultReader<Uint8Array>, carry: { text: string }) {
  const dec = new TextDecoder();
  while (!carry.text.includes("\n")) {
    const { value, done } = await r.read();
    if (done) throw new Error(`the child ended: ${carry.text}`);
    carry.text += dec.decode(value);
  }
  const i = carry.text.indexOf("\n");
  const line = carry.text.slice(0, i);
  carry.text = carry.text.slice(i + 1);
  return line;
}

/** Everything the server sends until it closes, or what came within `ms`. */
async function answer(conn: Deno.Conn, ms: number): Promise<string> {
  const dec = new TextDecoder();
  let text = "";
  const buf = new Uint8Array(4096);
  const timer = setTimeout(() => conn.close(), ms);
  try {
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      text += dec.decode(buf.subarray(0, n));
    }
  } catch { /* closed at the time limit */ }
  clearTimeout(timer);
  return text;
}

Deno.test({
  name:
    "the CRI, CLI and streaming listeners answer the connections that came while no descriptor was free",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "rkl-emfile-" });
    await Deno.writeTextFile(`${dir}/child.ts`, CHILD(dir));
    const child = new Deno.Command("prlimit", {
      args: [
        "--nofile=96:96",
        Deno.execPath(),
        "run",
        "-A",
        "--quiet",
        "--config",
        `${REPO}/deno.json`,
        `${dir}/child.ts`,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    const out = child.stdout.getReader();
    const carry = { text: "" };
    const stdin = child.stdin.getWriter();
    const Client = grpc.makeGenericClientConstructor(serviceDefinition("RuntimeService"), "rt");
    const client = new Client(`unix://${dir}/cri.sock`, grpc.credentials.createInsecure());
    try {
      const { port, held } = JSON.parse(await readLine(out, carry));
      assert.ok(held > 20, `the child held ${held} descriptors`);
      // All three connect while the child has no descriptor to accept them with.
      const version = new Promise<string>((resolve) =>
        // deno-lint-ignore no-explicit-any
        (client as any).Version(
          {},
          { deadline: Date.now() + 20_000 },
          (err: grpc.ServiceError | null, r: { runtime_name: string }) =>
            resolve(err ? `error: ${err.message}` : r.runtime_name),
        )
      );
      const cliConn = await Deno.connect({ transport: "unix", path: `${dir}/cli.sock` });
      await cliConn.write(new TextEncoder().encode("{}\n"));
      const streamConn = await Deno.connect({ hostname: "127.0.0.1", port });
      await streamConn.write(new TextEncoder().encode("GET /exec/nosuchtoken HTTP/1.1\r\n\r\n"));
      await new Promise((r) => setTimeout(r, 1_500));
      await stdin.write(new TextEncoder().encode("x"));
      assert.equal(await readLine(out, carry), "released");
      const t0 = Date.now();
      const [cliAnswer, streamAnswer, criAnswer] = await Promise.all([
        answer(cliConn, 8_000),
        answer(streamConn, 8_000),
        version,
      ]);
      const took = Date.now() - t0;
      assert.deepEqual(
        {
          cri: criAnswer,
          cli: cliAnswer,
          streaming: streamAnswer.split("\r\n")[0],
        },
        {
          cri: "emfile",
          cli: '{"fallback":"protocol undefined"}\n',
          streaming: "HTTP/1.1 404 Not Found",
        },
      );
      assert.ok(took < 5_000, `answered ${took} ms after the release`);
    } finally {
      client.close();
      await stdin.close().catch(() => {});
      const st = await Promise.race([
        child.status,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 5_000)),
      ]);
      if (!st) child.kill("SIGKILL");
      await child.status;
      out.releaseLock();
      await child.stdout.cancel().catch(() => {});
      const log = await stderr;
      await Deno.remove(dir, { recursive: true });
      console.log(log.trim());
    }
  },
});
