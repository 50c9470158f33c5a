/**
 * Signals as users name them (`KILL`, `SIGTERM`, `9`, `RTMIN+3`) and as
 * Linux numbers them, for `kill -s`, `compose kill -s` and the `signal`
 * attribute of a `kill` event (docker's attribute is the number).
 */
import { UsageError } from "../errors.ts";

/** Linux's signals 1-31 in number order (the same on x86_64 and arm64). */
// deno-fmt-ignore
const NAMES = [
  "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV",
  "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN",
  "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
];

/** glibc's SIGRTMIN (34: it keeps 32 and 33 for itself) and SIGRTMAX. */
const RTMIN = 34, RTMAX = 64;

/**
 * A signal as the runtime takes it: a number 1-64 as given, a name as
 * `SIGNAME` (any case, with or without `SIG`). Anything else is a usage
 * error naming `flag`.
 */
export function parseSignal(s: string, flag = "-s"): string {
  if (/^\d{1,2}$/.test(s) && Number(s) >= 1 && Number(s) <= RTMAX) return String(Number(s));
  const name = s.toUpperCase().replace(/^SIG/, "");
  if (!NAMES.includes(name) && rtNumber(name) === undefined) {
    throw new UsageError(
      `${flag} ${JSON.stringify(s)} is not a signal (a name such as TERM, or 1-64)`,
    );
  }
  return `SIG${name}`;
}

/** `RTMIN`, `RTMIN+N`, `RTMAX-N` as a number within 34-64. */
function rtNumber(name: string): number | undefined {
  const m = /^RTM(IN|AX)(?:([+-])(\d{1,2}))?$/.exec(name);
  if (!m) return undefined;
  const n = (m[1] === "IN" ? RTMIN : RTMAX) + (m[2] === "-" ? -1 : 1) * Number(m[3] ?? 0);
  return n >= RTMIN && n <= RTMAX ? n : undefined;
}

/** The number of a signal given as parseSignal returns it (or as a stop signal is stored). */
export function signalNumber(sig: string): number | undefined {
  if (/^\d+$/.test(sig)) return Number(sig);
  const name = sig.toUpperCase().replace(/^SIG/, "");
  const i = NAMES.indexOf(name);
  return i >= 0 ? i + 1 : rtNumber(name);
}
