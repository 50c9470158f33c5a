/**
 * Checks of what `rkl node install` renders, by the programs that will read
 * it: the kubelet's own config loading and validation, and systemd-analyze.
 *
 * The kubelet (v1.36) has no dry-run or validate mode. Started with the
 * config, a kubeconfig for an API server that is not there and a CRI
 * socket that is not there either, it loads and validates the config, reads
 * the client CA, sets up its TLS files (in a temporary --cert-dir), builds
 * its API client without dialling, checks the host's cgroups and swap
 * against the config (the container manager), and then stops at its first
 * CRI call: "validate service connection". That line is the pass. It has
 * not yet touched a sysctl, a cgroup, iptables, a port or /var/lib/kubelet
 * (it does all that only once the runtime answered); it takes about 80 ms.
 */
import { kubeletConfig, type KubeletConfigOptions, tokenKubeconfig } from "./install.ts";

const dec = new TextDecoder();

/** `kubelet --version`'s answer (`Kubernetes v1.36.3`), or undefined when it does not run. */
export function kubeletVersion(bin: string): string | undefined {
  try {
    const r = new Deno.Command(bin, { args: ["--version"], stdout: "piped", stderr: "null" })
      .outputSync();
    const out = dec.decode(r.stdout).trim();
    return r.success && out ? out : undefined;
  } catch {
    return undefined;
  }
}

/** The kubelet's error from its `"command failed" err="…"` line, unquoted. */
export function kubeletError(log: string): string | undefined {
  const m = log.match(/"command failed" err="((?:[^"\\]|\\.)*)"/);
  if (!m) return undefined;
  try {
    return JSON.parse(`"${m[1]}"`);
  } catch {
    return m[1];
  }
}

export interface KubeletCheck {
  ok: boolean;
  /** The kubelet's own words when it refused the config. */
  error?: string;
}

/**
 * Runs the kubelet on `config` (rendered with a temporary CA path and CRI
 * socket) as described above; `extraArgs` are the unit's flags other than
 * --config and the kubeconfigs (--hostname-override, --node-ip).
 */
export async function checkWithKubelet(
  bin: string,
  config: Omit<KubeletConfigOptions, "criSocket" | "clientCAFile">,
  caPem: string,
  extraArgs: string[],
): Promise<KubeletCheck> {
  const dir = await Deno.makeTempDir({ prefix: "rkl-node-check-" });
  try {
    const sock = `${dir}/no-runtime.sock`;
    await Deno.writeTextFile(`${dir}/ca.crt`, caPem);
    await Deno.writeTextFile(
      `${dir}/config.yaml`,
      kubeletConfig({ ...config, criSocket: sock, clientCAFile: `${dir}/ca.crt` }),
    );
    // Port 1 on loopback: nothing listens, and the kubelet does not dial before the CRI.
    await Deno.writeTextFile(
      `${dir}/kubeconfig`,
      tokenKubeconfig("https://127.0.0.1:1", `${dir}/ca.crt`, "rkl-node-check"),
    );
    const child = new Deno.Command(bin, {
      args: [
        `--config=${dir}/config.yaml`,
        `--kubeconfig=${dir}/kubeconfig`,
        `--root-dir=${dir}/root`,
        `--cert-dir=${dir}/pki`,
        ...extraArgs,
      ],
      cwd: dir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 20_000);
    const r = await child.output();
    clearTimeout(timer);
    const log = dec.decode(r.stdout) + dec.decode(r.stderr);
    const err = kubeletError(log);
    if (err?.includes("validate service connection") && err.includes(sock)) return { ok: true };
    if (err) return { ok: false, error: err };
    return {
      ok: false,
      error: r.signal === "SIGKILL"
        ? "it did not stop at its first CRI call within 20 s"
        : `it exited ${r.code} without saying why`,
    };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * `systemd-analyze verify` of the kubelet's unit, in a temporary dir beside
 * a copy of rkl.service (verify follows Requires= and fails on a missing
 * unit). Undefined when systemd-analyze is not installed.
 */
export async function verifyUnit(
  unitText: string,
  rklUnitText: string,
): Promise<{ ok: boolean; output: string } | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "rkl-node-unit-" });
  try {
    await Deno.writeTextFile(`${dir}/kubelet.service`, unitText);
    await Deno.writeTextFile(`${dir}/rkl.service`, rklUnitText);
    let r: Deno.CommandOutput;
    try {
      r = await new Deno.Command("systemd-analyze", {
        args: ["verify", `${dir}/kubelet.service`],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
    const output = (dec.decode(r.stdout) + dec.decode(r.stderr)).trim().replaceAll(`${dir}/`, "");
    return { ok: r.success && output === "", output };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
