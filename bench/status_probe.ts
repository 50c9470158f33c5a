/**
 * ContainerStatus right after StartContainer, against rkl's daemon and containerd
 * (bench/containerd.ts's peers): the first call of each container, then
 * variants that tell where its time goes: a second call at once, and a first
 * call after a pause. Root; run under the bench and e2e locks.
 *   deno run -A bench/status_probe.ts [N]
 * It runs the daemon of the tree it is in (bench/containerd.ts's REPO): to
 * compare two trees, run it from each in turn (main, branch, main, branch),
 * each against its own containerd run; PROBE_ONLY=rkl or =containerd runs one.
 */
import {
  benchRegistry,
  clientFor,
  ctrConfig,
  type Peer,
  podConfig,
  removeAll,
  startContainerd,
  startRkl,
  stat,
} from "./containerd.ts";

const N = Number(Deno.args[0] ?? "12");
const PAUSE = Number(Deno.env.get("PROBE_PAUSE_MS") ?? "30");
const only = Deno.env.get("PROBE_ONLY");
const dir = await Deno.makeTempDir({ prefix: "rkl-status-probe-" });
const reg = await benchRegistry(dir);
const peers: Peer[] = [];
try {
  if (only !== "containerd") {
    peers.push(await startRkl(`${dir}/rkl`, reg, { subnet: "10.235.1.0/24", network: "rklsp0" }));
  }
  if (only !== "rkl") {
    peers.push(
      await startContainerd(`${dir}/containerd`, reg, {
        subnet: "10.239.1.0/24",
        network: "ctrdsp0",
      }),
    );
  }
  const clients = peers.map((p) => clientFor(p.sock));
  for (const c of clients) {
    await c.call("PullImage", { image: { image: "docker.io/library/busybox:bench" } });
  }
  const t: Record<string, number[]>[] = peers.map(() => ({}));
  const time = async (k: number, name: string, fn: () => Promise<unknown>, keep: boolean) => {
    const t0 = performance.now();
    const r = await fn();
    if (keep) (t[k][name] ??= []).push(performance.now() - t0);
    return r;
  };
  for (let i = 0; i <= N; i++) {
    for (const [k, c] of clients.entries()) {
      for (const variant of ["now", "pause"]) {
        const config = podConfig(`p${i}${variant}`, `${dir}/${peers[k].name}`);
        const { pod_sandbox_id } = await c.call("RunPodSandbox", { config }) as {
          pod_sandbox_id: string;
        };
        const { container_id } = await c.call("CreateContainer", {
          pod_sandbox_id,
          config: ctrConfig("app"),
          sandbox_config: config,
        }) as { container_id: string };
        await c.call("StartContainer", { container_id });
        if (variant === "pause") await new Promise((r) => setTimeout(r, PAUSE));
        await time(
          k,
          `status first (${variant})`,
          () => c.call("ContainerStatus", { container_id }),
          i > 0,
        );
        await time(
          k,
          `status second (${variant})`,
          () => c.call("ContainerStatus", { container_id }),
          i > 0,
        );
        await time(k, `version (${variant})`, () => c.call("Version", {}), i > 0);
        await c.call("StopPodSandbox", { pod_sandbox_id });
        await c.call("RemovePodSandbox", { pod_sandbox_id });
      }
    }
  }
  for (const [k, p] of peers.entries()) {
    for (const [name, xs] of Object.entries(t[k])) {
      const s = stat(xs);
      console.log(
        `${p.name.padEnd(10)} ${name.padEnd(24)} p50 ${s.median.toFixed(3)} p95 ${
          s.p95.toFixed(3)
        } ms`,
      );
    }
  }
  for (const c of clients) {
    await removeAll(c.call);
    c.close();
  }
} finally {
  for (const p of peers.reverse()) await p.stop().catch((e) => console.error(`${p.name}: ${e}`));
  await reg.stop();
  for (const l of ["rklsp0", "ctrdsp0"]) {
    await new Deno.Command("ip", { args: ["link", "del", l], stderr: "null" }).output();
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
