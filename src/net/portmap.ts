/**
 * The portmap plugin installs shared nat chains on first use and never
 * removes them. When no container on the host (rkl's or any other CNI
 * user's) has a port mapping left, i.e. CNI-HOSTPORT-DNAT holds no rule,
 * rkl removes them so the host's nat table is as it was.
 *
 * One `iptables-save` reads the table and one `iptables-restore --noflush`
 * applies the whole removal atomically: 2 execs instead of 13.
 */
import type { CommandRunner } from "../sys/command.ts";

const CHAINS = ["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"];
const BUILTIN = new Set(["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]);

/**
 * The iptables-restore batch that removes portmap's chains from a
 * `iptables-save -t nat` dump, or undefined when they are absent or in use.
 */
export function portmapCleanupBatch(natDump: string): string | undefined {
  const lines = natDump.split("\n");
  const declared = new Set(
    lines.filter((l) => l.startsWith(":")).map((l) => l.slice(1).split(" ")[0]),
  );
  if (!declared.has("CNI-HOSTPORT-DNAT")) return undefined;
  const rules = lines.filter((l) => l.startsWith("-A "));
  if (rules.some((l) => l.startsWith("-A CNI-HOSTPORT-DNAT "))) return undefined; // a mapping is live
  const out = ["*nat"];
  // Jumps from the built-in chains into portmap's chains.
  for (const r of rules) {
    const chain = r.split(" ")[1];
    if (BUILTIN.has(chain) && CHAINS.some((c) => r.endsWith(`-j ${c}`))) {
      out.push(`-D ${r.slice(3)}`);
    }
  }
  const present = CHAINS.filter((c) => declared.has(c));
  for (const c of present) out.push(`-F ${c}`);
  for (const c of present) out.push(`-X ${c}`);
  out.push("COMMIT", "");
  return out.join("\n");
}

export async function removeIdlePortmapChains(cmd: CommandRunner): Promise<boolean> {
  const dump = await cmd.run("iptables-save", { args: ["-t", "nat"] });
  if (dump.code !== 0) return false;
  const batch = portmapCleanupBatch(dump.stdout);
  if (!batch) return false;
  const res = await cmd.run("iptables-restore", { args: ["-w", "5", "--noflush"], stdin: batch });
  // Losing a race with another CNI user that just added a mapping is fine: the chains stay.
  return res.code === 0;
}
