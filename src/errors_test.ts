import assert from "node:assert/strict";
import { runtimeErrorLine } from "./errors.ts";

Deno.test("runtimeErrorLine() keeps the runtime's own error, never a backtrace frame", () => {
  const youki = [
    "ERROR libcontainer::container::builder_impl: failed to run container process",
    "Error: failed to create container: executable '/x' not found in $PATH",
    "",
    "Stack backtrace:",
    "   0: anyhow::error::<impl anyhow::Error>::msg",
    "   8: __libc_start_main_impl",
    "             at ./csu/../csu/libc-start.c:360:3",
    "   9: <unknown>",
  ].join("\n");
  assert.equal(
    runtimeErrorLine(youki),
    "failed to create container: executable '/x' not found in $PATH",
  );
  const runc =
    'time="2026-12-01T22:43:06Z" level=error msg="runc create failed: error mounting \\"/a\\" to rootfs at \\"/data\\": no such file"';
  assert.equal(
    runtimeErrorLine(runc),
    'runc create failed: error mounting "/a" to rootfs at "/data": no such file',
  );
  assert.equal(runtimeErrorLine("one\ntwo\nthree\nfour\n"), "two; three; four");
});
