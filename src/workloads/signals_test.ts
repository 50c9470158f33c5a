import assert from "node:assert/strict";
import { parseSignal, signalNumber } from "./signals.ts";
import { UsageError } from "../errors.ts";

Deno.test("parseSignal() takes names in any case, with or without SIG, numbers 1-64 and RTMIN/RTMAX offsets", () => {
  assert.equal(parseSignal("KILL"), "SIGKILL");
  assert.equal(parseSignal("sigterm"), "SIGTERM");
  assert.equal(parseSignal("09"), "9");
  assert.equal(parseSignal("64"), "64");
  assert.equal(parseSignal("RTMIN+3"), "SIGRTMIN+3");
  assert.equal(parseSignal("rtmax-2"), "SIGRTMAX-2");
  for (const bad of ["0", "65", "FOO", "RTMIN-1", "RTMAX+1", "RTMIN+31", "SIG", "-9", "9x"]) {
    assert.throws(() => parseSignal(bad, "--signal"), UsageError, bad);
  }
  assert.throws(
    () => parseSignal("FOO", "--signal"),
    /^UsageError: --signal "FOO" is not a signal/,
  );
});

Deno.test("signalNumber() numbers signals as Linux does, the real-time ones from glibc's SIGRTMIN 34", () => {
  const want: [string, number][] = [
    ["SIGHUP", 1],
    ["SIGKILL", 9],
    ["SIGUSR1", 10],
    ["SIGTERM", 15],
    ["SIGCHLD", 17],
    ["SIGWINCH", 28],
    ["SIGPWR", 30],
    ["SIGSYS", 31],
    ["SIGRTMIN", 34],
    ["SIGRTMIN+3", 37],
    ["SIGRTMAX", 64],
    ["SIGRTMAX-1", 63],
    ["term", 15],
    ["12", 12],
  ];
  for (const [s, n] of want) assert.equal(signalNumber(s), n, s);
  assert.equal(signalNumber("SIGNOPE"), undefined);
});
