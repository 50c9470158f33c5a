/**
 * The portmap plugin installs shared nat chains on first use and never
 * removes them. When no container on the host (rkl's or any other CNI
 * user's) has a port mapping left, i.e. CNI-HOSTPORT-DNAT holds no rule,
 * rkl removes them so the host's nat table is as it was.
 */
import type { CommandRunner } from "../sys/command.ts";

const JUMPS: string[][] = [
  ["PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"],
  ["OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"],
  [
    "POSTROUTING",
    "-m",
    "comment",
    "--comment",
    "CNI portfwd requiring masquerade",
    "-j",
    "CNI-HOSTPORT-MASQ",
  ],
];
const CHAINS = ["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"];

export async function removeIdlePortmapChains(cmd: CommandRunner): Promise<boolean> {
  const ipt = (args: string[]) => cmd.run("iptables", { args: ["-w", "5", "-t", "nat", ...args] });
  const dnat = await ipt(["-S", "CNI-HOSTPORT-DNAT"]);
  if (dnat.code !== 0) return false; // chain absent: nothing to do
  if (dnat.stdout.split("\n").some((l) => l.startsWith("-A "))) return false; // still in use
  for (const rule of JUMPS) {
    // -C first: deleting a rule that is not there is an error we do not need.
    if ((await ipt(["-C", ...rule])).code === 0) await ipt(["-D", ...rule]);
  }
  for (const chain of CHAINS) await ipt(["-F", chain]);
  for (const chain of CHAINS) await ipt(["-X", chain]);
  return true;
}
