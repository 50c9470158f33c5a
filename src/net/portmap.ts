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
import { type HostLock, withHostLock } from "./hostnet.ts";

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
  // CNI-HOSTPORT-DNAT is never flushed: this dump may be stale, and a rule a
  // container added since must not be dropped. `-X` of a chain that is not
  // empty fails, and iptables-restore then applies none of the batch.
  for (const c of present) if (c !== "CNI-HOSTPORT-DNAT") out.push(`-F ${c}`);
  for (const c of present) out.push(`-X ${c}`);
  out.push("COMMIT", "");
  return out.join("\n");
}

/**
 * portmap's chains are host-wide, shared by every rkl state root: one
 * host-wide lock orders their removal against ADDs that are setting them up
 * (portmap makes the chains first and adds its DNAT rule after, and removing
 * the chains in between fails that ADD). ADDs share it; the removal is alone.
 */
export const PORTMAP_LOCK = "/run/lock/rkl-portmap.lock";
/** Held alone around each portmap plugin ADD (see attach.ts). */
export const PORTMAP_ADD_LOCK = "/run/lock/rkl-portmap-add.lock";

export function withPortmapLock<T>(
  exclusive: boolean,
  fn: () => Promise<T>,
  path = PORTMAP_LOCK,
  lock?: HostLock,
): Promise<T> {
  return withHostLock(path, exclusive, fn, lock);
}

export async function removeIdlePortmapChains(
  cmd: CommandRunner,
  lock?: HostLock,
): Promise<boolean> {
  return await withPortmapLock(
    true,
    async () => {
      const dump = await cmd.run("iptables-save", { args: ["-t", "nat"] });
      if (dump.code !== 0) return false;
      const batch = portmapCleanupBatch(dump.stdout);
      if (!batch) return false;
      const res = await cmd.run("iptables-restore", {
        args: ["-w", "5", "--noflush"],
        stdin: batch,
      });
      // A rule added by a CNI user outside rkl since the dump fails the batch: the chains stay.
      return res.code === 0;
    },
    PORTMAP_LOCK,
    lock,
  );
}

/**
 * The iptables-restore batch that removes every nat rule the CNI plugins
 * tagged with container id `cniId` (portmap's DNAT jumps, bridge's
 * masquerade jumps: their comments say `id: "ID"`) and the per-container
 * chains those rules jump to; undefined when there are none. Used where the
 * plugin's own DEL cannot run: a record lost or damaged.
 */
export function natCleanupForId(natDump: string, cniId: string): string | undefined {
  const tag = `id: \\"${cniId}\\"`;
  const lines = natDump.split("\n");
  const tagged = lines.filter((l) => l.startsWith("-A ") && l.includes(tag));
  if (tagged.length === 0) return undefined;
  const chains = new Set<string>();
  for (const r of tagged) {
    const m = / -j (CNI-[A-Za-z0-9_-]+)/.exec(r);
    if (m && !m[1].startsWith("CNI-HOSTPORT-")) chains.add(m[1]);
  }
  const declared = new Set(
    lines.filter((l) => l.startsWith(":")).map((l) => l.slice(1).split(" ")[0]),
  );
  const out = ["*nat"];
  for (const r of tagged) {
    if (!chains.has(r.split(" ")[1])) out.push(`-D ${r.slice(3)}`);
  }
  // Jumps into the per-container chains from anywhere else go too.
  for (const r of lines.filter((l) => l.startsWith("-A ") && !l.includes(tag))) {
    const m = / -j (CNI-[A-Za-z0-9_-]+)$/.exec(r);
    if (m && chains.has(m[1]) && !chains.has(r.split(" ")[1])) out.push(`-D ${r.slice(3)}`);
  }
  for (const c of chains) if (declared.has(c)) out.push(`-F ${c}`);
  for (const c of chains) if (declared.has(c)) out.push(`-X ${c}`);
  out.push("COMMIT", "");
  return out.join("\n");
}

export async function removeNatRulesFor(cmd: CommandRunner, cniId: string): Promise<boolean> {
  const dump = await cmd.run("iptables-save", { args: ["-t", "nat"] });
  if (dump.code !== 0) return false;
  const batch = natCleanupForId(dump.stdout, cniId);
  if (!batch) return false;
  const res = await cmd.run("iptables-restore", { args: ["-w", "5", "--noflush"], stdin: batch });
  return res.code === 0;
}
