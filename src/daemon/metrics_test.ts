import assert from "node:assert/strict";
import { DaemonMetrics, escapeLabel, parseMetricsAddress } from "./metrics.ts";
import type { ImageService } from "../image/service.ts";
import type { ImageRecord } from "../image/store.ts";
import { UsageError } from "../errors.ts";

Deno.test("parseMetricsAddress() takes PORT, HOST:PORT and [V6]:PORT, and refuses a remote host unless allowed", () => {
  assert.deepEqual(parseMetricsAddress("9464"), { hostname: "127.0.0.1", port: 9464 });
  assert.deepEqual(parseMetricsAddress("127.0.0.2:80"), { hostname: "127.0.0.2", port: 80 });
  assert.deepEqual(parseMetricsAddress("localhost:9"), { hostname: "localhost", port: 9 });
  assert.deepEqual(parseMetricsAddress("[::1]:9464"), { hostname: "::1", port: 9464 });
  assert.throws(
    () => parseMetricsAddress("0.0.0.0:9464"),
    (e: unknown) =>
      e instanceof UsageError && /not a loopback address/.test(e.message) &&
      /--metrics-allow-remote/.test(e.message),
  );
  assert.deepEqual(parseMetricsAddress("0.0.0.0:9464", true), { hostname: "0.0.0.0", port: 9464 });
  for (const bad of ["", ":80", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x", "a b:1"]) {
    assert.throws(() => parseMetricsAddress(bad), UsageError, bad);
  }
});

Deno.test("escapeLabel() escapes backslash, quote and newline as the text format asks", () => {
  assert.equal(escapeLabel('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
});

Deno.test("DaemonMetrics counts CRI calls in a cumulative histogram per method", () => {
  const m = new DaemonMetrics();
  m.observeCri("Version", "OK", 0.003);
  m.observeCri("Version", "OK", 0.2);
  m.observeCri("RunPodSandbox", "INVALID_ARGUMENT", 20);
  assert.deepEqual(m.criRequests.lines("r"), [
    'r{method="Version",code="OK"} 2',
    'r{method="RunPodSandbox",code="INVALID_ARGUMENT"} 1',
  ]);
  const h = m.criLatency.lines("h");
  assert.ok(h.includes('h_bucket{method="Version",le="0.005"} 1'));
  assert.ok(h.includes('h_bucket{method="Version",le="0.1"} 1'));
  assert.ok(h.includes('h_bucket{method="Version",le="0.25"} 2'));
  assert.ok(h.includes('h_bucket{method="Version",le="+Inf"} 2'));
  assert.ok(h.includes('h_sum{method="Version"} 0.203'));
  assert.ok(h.includes('h_count{method="Version"} 2'));
  // Above the last bucket: only +Inf counts it.
  assert.ok(h.includes('h_bucket{method="RunPodSandbox",le="10"} 0'));
  assert.ok(h.includes('h_bucket{method="RunPodSandbox",le="+Inf"} 1'));
});

Deno.test("DaemonMetrics.instrument() times every pull and adds the image's bytes", async () => {
  const m = new DaemonMetrics();
  let fail = false;
  const images = {
    pull: (ref: string) =>
      fail
        ? Promise.reject(new Error("no such image"))
        : Promise.resolve({ id: ref, size: 4096 } as unknown as ImageRecord),
  } as unknown as ImageService;
  let t = 0;
  m.instrument(images, () => (t += 1500));
  assert.equal((await images.pull("busybox")).size, 4096);
  fail = true;
  await assert.rejects(() => images.pull("nope"), /no such image/);
  assert.deepEqual(m.pulls.lines("p"), ['p{result="success"} 1', 'p{result="failure"} 1']);
  assert.deepEqual(m.pullBytes.lines("b"), ["b 4096"]);
  assert.ok(m.pullSeconds.lines("d").includes("d_sum 3"));
  assert.ok(m.pullSeconds.lines("d").includes('d_bucket{le="1"} 0'));
  assert.ok(m.pullSeconds.lines("d").includes('d_bucket{le="2.5"} 2'));
});
