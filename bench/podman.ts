/**
 * podman 4.3 as the benches run it on these hosts. Podman's defaults raise
 * rlimits, which a host without CAP_SYS_RESOURCE refuses; even nproc one below
 * the hard limit was refused through podman's process chain, 4096 is not.
 * runc (Debian's crun refuses hybrid cgroups), cgroupfs (no systemd as PID 1),
 * events to a file (no journald).
 */
const CONF = `[containers]\ndefault_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]\n` +
  `[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n`;

/** Writes that containers.conf to `file`; the environment that makes podman read it. */
export async function podmanEnv(file: string): Promise<{ CONTAINERS_CONF: string }> {
  await Deno.writeTextFile(file, CONF);
  return { CONTAINERS_CONF: file };
}
