/**
 * The thin client's docker-style commands while `rkl daemon` serves them:
 * a plain `stats --no-stream` (which the daemon runs without building the
 * CLI) prints the table the in-process command prints, twice in a row (the
 * second from the sampler, with the first request's reading kept), and
 * `stats --no-stream NAME` still goes through the full command; a served
 * `run -d` starts its container. The daemon's log says it served each. `busybox` comes
 * from a local docker-registry behind a docker.io mirror entry. The test
 * ends with the host census as it began.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rklOk, waitForSocket } from "../_helpers/env.ts";
import { requires } from "../_helpers/requires.ts";
import type { Registry } from "../_helpers/oci.ts";
import { busyboxMirror } from "../_helpers/busybox_mirror.ts";
import { startDaemon, stopDaemon } from "../_helpers/daemon.ts";

const ready = requires("root", "conmon", "bundles", "youki", "registry");
const env = ready ? await makeEnv("dsrv", 54) : undefined;
const { test } = censusTests(ready, () => env!);

let registry: Registry | undefined;
// Pulled before the first census: the image stays for the file's tests.
if (ready) registry = await busyboxMirror(env!);

/** The table's first column (names), header first; the rest varies between readings. */
const firstColumn = (table: string) => table.trim().split("\n").map((l) => l.split(/\s{2,}/)[0]);

test("served stats --no-stream and run -d: what the in-process commands print, and the daemon says it served them", async () => {
  for (const n of ["sa", "sb"]) {
    await rklOk(env!, ["run", "-d", "--name", n, "--network", "none", "busybox", "sleep", "300"]);
  }
  const local = await rklOk({ ...env!, env: { ...env!.env, RKL_NO_DAEMON: "1" } }, [
    "stats",
    "--no-stream",
  ]);
  assert.deepEqual(firstColumn(local), ["CONTAINER ID", "sa", "sb"]);

  const manifests = `${env!.dir}/manifests-served`;
  Deno.mkdirSync(manifests, { recursive: true });
  const d = startDaemon(env!, manifests, { stderr: "piped" });
  const log = (async () => {
    let text = "";
    for await (const c of d.stderr.pipeThrough(new TextDecoderStream())) text += c;
    return text;
  })();
  let served: string[] = [];
  try {
    await waitForSocket("the daemon's socket", `${env!.env.RKL_RUN_ROOT}/cli.sock`);
    served = [
      await rklOk(env!, ["stats", "--no-stream"]),
      await rklOk(env!, ["stats", "--no-stream"]),
      await rklOk(env!, ["stats", "--no-stream", "sb"]),
    ];
    assert.equal(await rklOk(env!, [...runArgs("sc")]), "sc\n");
    assert.match(
      await rklOk(env!, ["ps", "--format", "{{.Names}} {{.Status}}", "--filter", "name=sc"]),
      /^sc Up /,
    );
  } finally {
    await stopDaemon(d);
  }
  const text = await log;
  for (const t of served.slice(0, 2)) {
    assert.deepEqual(firstColumn(t), firstColumn(local), t);
    // The same columns (their widths follow the values, which move between readings).
    const header = (x: string) => x.split("\n")[0].split(/\s{2,}/);
    assert.deepEqual(header(t), header(local));
  }
  assert.deepEqual(firstColumn(served[2]), ["CONTAINER ID", "sb"]);
  assert.equal(text.match(/cli: served stats --no-stream \(exit 0\)/g)?.length, 3, text);
  assert.match(text, /cli: served run {2}\(exit 0\)/, text);
  assert.doesNotMatch(text, /not served/, text);
  await rklOk(env!, ["rm", "-f", "sa", "sb", "sc"]);
});

function runArgs(name: string): string[] {
  return ["run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "300"];
}

cleanupAfterAll(env, async () => {
  await registry?.stop();
});
