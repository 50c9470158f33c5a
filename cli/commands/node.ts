/**
 * `rkl node install` / `uninstall`: make this host a Kubernetes node with
 * rkl as its runtime (the kubelet's config, kubeconfig and unit), checked
 * by the kubelet itself and systemd-analyze before anything is written.
 */
import type { Command } from "commander";
import type { Context } from "../app.ts";
import { write } from "../format.ts";
import { resolvePaths } from "../host.ts";
import { UsageError } from "../../src/errors.ts";
import { which } from "../../src/oci/runtime.ts";
import {
  cgroupV1,
  checkCa,
  checkKubeconfig,
  checkNodeIp,
  checkNodeName,
  checkServer,
  checkToken,
  kubeletArgs,
  kubeletConfig,
  type KubeletConfigOptions,
  kubeletUnit,
  nodePaths,
  readUserFile,
  swapOn,
  tokenKubeconfig,
} from "../../src/node/install.ts";
import { checkWithKubelet, kubeletVersion, verifyUnit } from "../../src/node/verify.ts";
import { formatNodeCheck, nodeChecks } from "../../src/doctor.ts";

const MARK = "# written by rkl node install";

interface InstallOptions {
  kubeconfig?: string;
  server?: string;
  token?: string;
  certificateAuthority?: string;
  nodeName?: string;
  nodeIp?: string;
  clusterDns?: string;
  clusterDomain: string;
  cgroupDriver: string;
  kubelet?: string;
  criSocket?: string;
  force?: boolean;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function readOr(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Writes every file or none: each goes to a temporary name beside it, then
 * all are renamed; on a failure what was renamed gets its old content back
 * and the directories made for it go.
 */
function writeAll(files: { path: string; text: string; mode: number }[]): void {
  const madeDirs: string[] = [];
  const done: { path: string; old?: string }[] = [];
  const temps: string[] = [];
  try {
    for (const f of files) {
      const dir = f.path.slice(0, f.path.lastIndexOf("/"));
      const missing: string[] = [];
      for (let d = dir; d && !exists(d); d = d.slice(0, d.lastIndexOf("/"))) missing.unshift(d);
      for (const d of missing) {
        Deno.mkdirSync(d, { mode: 0o755 });
        madeDirs.push(d);
      }
      const tmp = `${f.path}.rkl-tmp`;
      Deno.writeTextFileSync(tmp, f.text, { mode: f.mode });
      Deno.chmodSync(tmp, f.mode);
      temps.push(tmp);
    }
    for (const f of files) {
      const old = readOr(f.path);
      Deno.renameSync(`${f.path}.rkl-tmp`, f.path);
      done.push({ path: f.path, old });
    }
  } catch (e) {
    for (const t of temps) {
      try {
        Deno.removeSync(t);
      } catch { /* renamed already */ }
    }
    for (const d of done.reverse()) {
      try {
        if (d.old === undefined) Deno.removeSync(d.path);
        else Deno.writeTextFileSync(d.path, d.old);
      } catch { /* best effort */ }
    }
    for (const d of madeDirs.reverse()) {
      try {
        Deno.removeSync(d);
      } catch { /* not empty */ }
    }
    throw e;
  }
}

export function registerNode(program: Command, ctx: Context): void {
  const node = program.command("node").description(
    "make this host a Kubernetes node with rkl as the kubelet's runtime",
  );
  node.command("install").description(
    "write the kubelet's config, kubeconfig and systemd unit for rkl's CRI, checked by the kubelet and systemd-analyze",
  )
    .option("--kubeconfig <file>", "the kubelet's kubeconfig (client certificate or token)")
    .option("--server <url>", "the API server (with --token: TLS bootstrap)")
    .option("--token <token>", "a bootstrap token (kubeadm token create)")
    .option("--certificate-authority <file>", "the cluster's CA certificate (PEM)")
    .option("--node-name <name>", "the node's name (default: the host name)")
    .option("--node-ip <ip>", "the node's IP address(es) (default: the kubelet picks one)")
    .option("--cluster-dns <ips>", "the cluster DNS service IP(s), comma-separated")
    .option("--cluster-domain <domain>", "the cluster's DNS domain", "cluster.local")
    .option("--cgroup-driver <driver>", "cgroupfs (rkl's; systemd is refused)", "cgroupfs")
    .option("--kubelet <path>", "the kubelet binary (default: kubelet on PATH)")
    .option("--cri-socket <path>", "rkl's CRI socket (default: RUN_ROOT/rkl.sock)")
    .option("--force", "overwrite files a previous install or kubeadm wrote")
    .action(async (o: InstallOptions) => {
      // 1. The user's input, every part checked before anything is written.
      if (o.cgroupDriver !== "cgroupfs") {
        throw new UsageError(
          o.cgroupDriver === "systemd"
            ? "--cgroup-driver systemd: rkl places pods in cgroupfs (its CRI's RuntimeConfig answers CGROUPFS, which the kubelet follows); use cgroupfs"
            : `--cgroup-driver ${
              JSON.stringify(o.cgroupDriver)
            }: cgroupfs is the only driver rkl has`,
        );
      }
      const token = o.server !== undefined || o.token !== undefined;
      if (o.kubeconfig !== undefined && token) {
        throw new UsageError("give --kubeconfig, or --server with --token, not both");
      }
      if (o.kubeconfig === undefined && !token) {
        throw new UsageError(
          "give the kubelet's credentials: --kubeconfig FILE, or --server URL --token TOKEN --certificate-authority FILE",
        );
      }
      if (token && (o.server === undefined || o.token === undefined)) {
        throw new UsageError("--server and --token go together (a bootstrap token needs both)");
      }
      if (token && o.certificateAuthority === undefined) {
        throw new UsageError(
          "--certificate-authority FILE is missing: the kubelet checks the API server against the cluster's CA (kubeadm: /etc/kubernetes/pki/ca.crt on a control-plane node)",
        );
      }
      const read = (p: string) => Deno.readTextFileSync(p);
      const caFromFlag = o.certificateAuthority === undefined ? undefined : checkCa(
        readUserFile(read, o.certificateAuthority, "--certificate-authority"),
        o.certificateAuthority,
      );
      const server = o.server === undefined ? undefined : checkServer(o.server);
      if (o.token !== undefined) checkToken(o.token);
      const kc = o.kubeconfig === undefined ? undefined : checkKubeconfig(
        readUserFile(read, o.kubeconfig, "--kubeconfig"),
        o.kubeconfig,
        read,
        caFromFlag,
      );
      const caPem = (caFromFlag ?? kc?.caPem)!;
      if (o.nodeName !== undefined) checkNodeName(o.nodeName);
      if (o.nodeIp !== undefined) checkNodeIp(o.nodeIp);
      const clusterDNS = o.clusterDns?.split(",").map((ip) => checkNodeIp(ip, "--cluster-dns"));
      if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(o.clusterDomain)) {
        throw new UsageError(`--cluster-domain ${JSON.stringify(o.clusterDomain)}: a DNS domain`);
      }
      if (o.kubelet !== undefined && !o.kubelet.startsWith("/")) {
        throw new UsageError(`--kubelet ${JSON.stringify(o.kubelet)} must be an absolute path`);
      }
      const kubelet = o.kubelet ?? which("kubelet");
      if (!kubelet) {
        throw new UsageError(
          "kubelet is not on PATH: install your cluster's kubelet, or name it with --kubelet PATH",
        );
      }
      const version = kubeletVersion(kubelet);
      if (!version) throw new UsageError(`--kubelet ${kubelet}: \`${kubelet} --version\` fails`);
      const socket = o.criSocket?.replace(/^unix:\/\//, "") ??
        `${resolvePaths(ctx.options()).runRoot}/rkl.sock`;
      if (!socket.startsWith("/") || socket.split("/").includes("..")) {
        throw new UsageError(`--cri-socket ${JSON.stringify(o.criSocket)}: an absolute path`);
      }

      // 2. Where it goes, and what is there already.
      const paths = nodePaths(Deno.env.get("RKL_INSTALL_ROOT"));
      const rklUnit = paths.rklUnits.find(exists);
      if (!rklUnit) {
        throw new UsageError(
          "rkl.service is not installed (the kubelet's unit requires it): run `rkl daemon install` first",
        );
      }
      const targets = [
        paths.config,
        paths.ca,
        paths.unit,
        kc ? paths.kubeconfig : paths.bootstrapKubeconfig,
      ];
      const taken = targets.filter(exists);
      if (taken.length > 0 && !o.force) {
        throw new UsageError(
          `${taken.join(", ")} already there (a node installed before?): --force overwrites`,
        );
      }

      // 3. The files.
      const host: Omit<KubeletConfigOptions, "criSocket" | "clientCAFile"> = {
        cgroupV1: cgroupV1(Deno.readTextFileSync("/proc/self/mountinfo")),
        swapOn: swapOn(readOr("/proc/swaps") ?? ""),
        clusterDNS,
        clusterDomain: o.clusterDomain,
        // kubeadm's rule: on systemd-resolved hosts the real resolv.conf, not the 127.0.0.53 stub.
        resolvConf: exists("/run/systemd/resolve/resolv.conf")
          ? "/run/systemd/resolve/resolv.conf"
          : undefined,
      };
      // The kubelet reads the files at their installed paths (RKL_INSTALL_ROOT is for staging).
      const real = nodePaths("/");
      const config = kubeletConfig({ ...host, criSocket: socket, clientCAFile: real.ca });
      const kubeconfigText = kc
        ? `${MARK}\n${kc.text}`
        : `${MARK}\n${tokenKubeconfig(server!, real.ca, o.token!)}`;
      const unitOpts = {
        kubelet,
        config: real.config,
        kubeconfig: real.kubeconfig,
        bootstrapKubeconfig: kc ? undefined : real.bootstrapKubeconfig,
        nodeName: o.nodeName,
        nodeIp: o.nodeIp,
      };
      const unit = kubeletUnit(unitOpts);

      // 4. Checked by the kubelet and by systemd before anything is written.
      const extra = kubeletArgs(unitOpts).filter((a) =>
        a.startsWith("--hostname-override=") || a.startsWith("--node-ip=")
      );
      const byKubelet = await checkWithKubelet(kubelet, host, caPem, extra);
      if (!byKubelet.ok) {
        throw new UsageError(`the kubelet (${version}) refuses the config: ${byKubelet.error}`);
      }
      const bySystemd = await verifyUnit(unit, Deno.readTextFileSync(rklUnit));
      if (bySystemd && !bySystemd.ok) {
        throw new UsageError(
          `systemd-analyze verify kubelet.service: ${bySystemd.output.split("\n")[0]}`,
        );
      }

      writeAll([
        { path: paths.ca, text: caPem, mode: 0o644 },
        {
          path: kc ? paths.kubeconfig : paths.bootstrapKubeconfig,
          text: kubeconfigText,
          mode: 0o600,
        },
        { path: paths.config, text: config, mode: 0o644 },
        { path: paths.unit, text: unit, mode: 0o644 },
      ]);
      write(`kubelet ${kubelet}: ${version}; its config passes its own validation\n`);
      write(
        bySystemd
          ? "kubelet.service passes systemd-analyze verify\n"
          : "kubelet.service: not verified (systemd-analyze is not installed)\n",
      );
      for (const t of targets) write(`wrote ${t}\n`);
      if (host.swapOn) write("swap is on: the config lets the kubelet start, pods get no swap\n");
      const lacks = nodeChecks(undefined, { config: paths.config, unit: paths.unit })
        .filter((c) => !c.ok);
      for (const c of lacks) write(`${formatNodeCheck(c)}\n`);
      write("then: systemctl daemon-reload && systemctl enable --now rkl kubelet\n");
    });

  node.command("uninstall").description(
    "remove the kubelet unit, config and kubeconfigs that `rkl node install` wrote",
  ).action(() => {
    const paths = nodePaths(Deno.env.get("RKL_INSTALL_ROOT"));
    for (const f of [paths.unit, paths.config, paths.kubeconfig, paths.bootstrapKubeconfig]) {
      // Only rkl's own files: a kubelet.conf the kubelet wrote after its bootstrap stays.
      if (!readOr(f)?.startsWith(MARK)) continue;
      Deno.removeSync(f);
      write(`removed ${f}\n`);
    }
    if (exists(paths.ca)) write(`left ${paths.ca} (the cluster's CA; remove it by hand)\n`);
  });
}
