/** A service's `ports`, short and long syntax, ranges included. */
import type { PathSegment } from "../source.ts";
import type { Located } from "./located.ts";
import type { RawService } from "./schema.ts";
import type { ComposePort } from "./types.ts";

export function parsePorts(
  L: Located,
  svc: string,
  raw: NonNullable<RawService["ports"]>,
): ComposePort[] {
  const out: ComposePort[] = [];
  raw.forEach((p, i) => {
    const where: PathSegment[] = ["services", svc, "ports", i];
    if (typeof p === "object") {
      if (p.published === undefined || p.published === "") return; // not published
      const [lo, hi = lo] = String(p.published).split("-").map(Number);
      if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi > 65535 || hi < lo) {
        throw L.error(
          [...where, "published"],
          `published port ${JSON.stringify(p.published)} must be 1-65535`,
        );
      }
      out.push({
        hostIP: p.host_ip,
        hostPort: lo,
        ...(hi > lo ? { hostPortEnd: hi } : {}),
        containerPort: p.target,
        protocol: p.protocol ?? "tcp",
      });
      return;
    }
    // ":2283:2283": an empty host IP means every address, as docker reads it.
    const s = /^:[^:]+:[^:]+$/.test(String(p)) ? String(p).slice(1) : String(p);
    const m =
      /^(?:(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(?:(\d+)(?:-(\d+))?:)?(\d+)(?:-(\d+))?(?:\/(tcp|udp))?$/i
        .exec(s);
    if (!m) {
      throw L.error(
        where,
        `port ${
          JSON.stringify(s)
        } must look like "8080:80", "127.0.0.1:8080:80/udp" or "9000-9001:80-81"`,
      );
    }
    const [, ip, hlo, hhi, clo, chi, proto] = m;
    const cLo = Number(clo), cHi = Number(chi ?? clo);
    if (!hlo) return; // container port only: compose would pick a random host port; rkl publishes nothing
    const hLo = Number(hlo), hHi = Number(hhi ?? hlo);
    if (hHi > hLo && chi === undefined && hHi <= 65535 && cLo >= 1 && cLo <= 65535) {
      // A host range to one container port: docker takes the first free port of the range.
      out.push({
        hostIP: ip,
        hostPort: hLo,
        hostPortEnd: hHi,
        containerPort: cLo,
        protocol: (proto?.toLowerCase() ?? "tcp") as "tcp" | "udp",
      });
      return;
    }
    if (
      hHi - hLo !== cHi - cLo || cHi < cLo || [hLo, hHi, cLo, cHi].some((n) => n < 1 || n > 65535)
    ) {
      throw L.error(
        where,
        `port range ${JSON.stringify(s)} must map ranges of the same length within 1-65535`,
      );
    }
    for (let k = 0; k <= cHi - cLo; k++) {
      out.push({
        hostIP: ip,
        hostPort: hLo + k,
        containerPort: cLo + k,
        protocol: (proto?.toLowerCase() ?? "tcp") as "tcp" | "udp",
      });
    }
  });
  return out;
}
