/**
 * `rkl node install`: what a host needs to join a Kubernetes cluster with
 * rkl as its runtime, written as kubeadm lays it out: the kubelet's
 * KubeletConfiguration (`/var/lib/kubelet/config.yaml`), its kubeconfig
 * (`/etc/kubernetes/kubelet.conf`) or bootstrap kubeconfig
 * (`/etc/kubernetes/bootstrap-kubelet.conf`), the cluster CA
 * (`/etc/kubernetes/pki/ca.crt`) and a systemd unit for the kubelet
 * (`/etc/systemd/system/kubelet.service`, after and requiring rkl.service).
 *
 * This module is pure: it checks what the user gave and renders the files.
 * Running the kubelet's own validation and systemd-analyze is in ./verify.ts.
 */
import { X509Certificate } from "node:crypto";
import { parse, stringify } from "yaml";
import { UsageError } from "../errors.ts";

export interface NodePaths {
  config: string;
  kubeconfig: string;
  bootstrapKubeconfig: string;
  ca: string;
  unit: string;
  /** Where rkl.service may be (the kubelet's unit requires it). */
  rklUnits: string[];
}

/** The paths under `root` (RKL_INSTALL_ROOT, for packaging and tests). */
export function nodePaths(root = "/"): NodePaths {
  const r = root.replace(/\/+$/, "");
  return {
    config: `${r}/var/lib/kubelet/config.yaml`,
    kubeconfig: `${r}/etc/kubernetes/kubelet.conf`,
    bootstrapKubeconfig: `${r}/etc/kubernetes/bootstrap-kubelet.conf`,
    ca: `${r}/etc/kubernetes/pki/ca.crt`,
    unit: `${r}/etc/systemd/system/kubelet.service`,
    rklUnits: [
      `${r}/etc/systemd/system/rkl.service`,
      `${r}/usr/lib/systemd/system/rkl.service`,
      `${r}/lib/systemd/system/rkl.service`,
    ],
  };
}

/** The first PEM certificate of `text`, checked to be a CA certificate; `what` names its source. */
export function checkCa(text: string, what: string): string {
  const m = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/);
  if (!m) throw new UsageError(`${what}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(m[0]);
  } catch (e) {
    throw new UsageError(`${what}: not a valid certificate: ${(e as Error).message}`);
  }
  if (!cert.ca) {
    throw new UsageError(
      `${what}: ${cert.subject.replaceAll("\n", ", ")} is not a CA certificate (no CA:TRUE)`,
    );
  }
  return text.endsWith("\n") ? text : `${text}\n`;
}

/** The API server's URL: https, a host, nothing after the path. */
export function checkServer(text: string, what = "--server"): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new UsageError(`${what} ${JSON.stringify(text)}: not a URL (https://HOST:PORT)`);
  }
  if (u.protocol !== "https:" || !u.hostname || u.search || u.hash || u.username) {
    throw new UsageError(
      `${what} ${JSON.stringify(text)}: give https://HOST[:PORT] of the API server`,
    );
  }
  return text.replace(/\/+$/, "");
}

/**
 * A token for the kubelet's TLS bootstrap: a bootstrap token
 * (`[a-z0-9]{6}.[a-z0-9]{16}`, what `kubeadm token create` prints) or any
 * other bearer token the API server accepts; printable, no whitespace.
 */
export function checkToken(text: string): string {
  if (!/^[\x21-\x7e]{1,4096}$/.test(text)) {
    throw new UsageError("--token: give the bootstrap token (abcdef.0123456789abcdef), no spaces");
  }
  return text;
}

/** A node name as the kubelet takes it (a DNS-1123 subdomain). */
export function checkNodeName(text: string): string {
  if (
    text.length > 253 ||
    !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(text)
  ) {
    throw new UsageError(
      `--node-name ${JSON.stringify(text)}: lower-case letters, digits, '-' and '.' only`,
    );
  }
  return text;
}

/** One IP address, or two of different families (the kubelet's --node-ip). */
export function checkNodeIp(text: string, what = "--node-ip"): string {
  const parts = text.split(",");
  const family = (p: string) =>
    /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(p)
      ? 4
      : /^[0-9a-fA-F:]+$/.test(p) && p.includes(":") && URL.canParse(`http://[${p}]/`)
      ? 6
      : 0;
  const fams = parts.map(family);
  if (parts.length > 2 || fams.includes(0) || (parts.length === 2 && fams[0] === fams[1])) {
    throw new UsageError(
      `${what} ${JSON.stringify(text)}: an IP address, or an IPv4 and an IPv6 address`,
    );
  }
  return text;
}

/** What reads the user's files: the real filesystem, or a fake in tests. */
export type ReadFile = (path: string) => string;

/** Reads a file the user named; a file that cannot be read is bad input (exit 2). */
export function readUserFile(read: ReadFile, path: string, what: string): string {
  try {
    return read(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : e instanceof Deno.errors.IsADirectory
      ? "is a directory"
      : (e as Error).message;
    throw new UsageError(`${what} ${path}: cannot read it: ${why}`);
  }
}

export interface CheckedKubeconfig {
  /** The server of the current context's cluster. */
  server: string;
  /** The cluster's CA (PEM), from certificate-authority(-data). */
  caPem: string;
  /** The kubeconfig to install: one context, its files' contents embedded (no path outside it). */
  text: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Checks a kubeconfig for the kubelet: its current context names a cluster
 * with an https server and a CA and a user with a client certificate and
 * key or a token. Files it names (relative to the kubeconfig's directory,
 * as kubectl reads them) are read and embedded, so the installed copy
 * stands alone. `caOverride` (--certificate-authority) wins over its CA.
 */
export function checkKubeconfig(
  text: string,
  file: string,
  read: ReadFile,
  caOverride?: string,
): CheckedKubeconfig {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    const first = (e as Error).message.split("\n")[0];
    throw new UsageError(`${file}: not YAML: ${first}`);
  }
  const bad = (field: string, why: string) => new UsageError(`${file}: ${field}: ${why}`);
  if (!isObj(doc)) {
    throw bad("(top)", "not a kubeconfig (a mapping with clusters, users, contexts)");
  }
  const dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/")) || "/" : ".";
  const resolve = (p: string) => p.startsWith("/") ? p : `${dir}/${p}`;
  const named = (list: string, name: string): Obj => {
    const arr = doc[list];
    if (!Array.isArray(arr)) throw bad(list, "missing (a list)");
    const i = arr.findIndex((e) => isObj(e) && e.name === name);
    if (i < 0) throw bad(list, `no entry named ${JSON.stringify(name)}`);
    const inner = (arr[i] as Obj)[list.slice(0, -1)];
    if (!isObj(inner)) throw bad(`${list}[${i}].${list.slice(0, -1)}`, "missing");
    return inner;
  };
  const contexts = Array.isArray(doc.contexts) ? doc.contexts : [];
  let ctxName = doc["current-context"];
  if (typeof ctxName !== "string" || ctxName === "") {
    if (contexts.length !== 1 || !isObj(contexts[0])) {
      throw bad("current-context", "not set, and there is not exactly one context");
    }
    ctxName = String(contexts[0].name);
  }
  const ctx = named("contexts", ctxName as string);
  if (typeof ctx.cluster !== "string") throw bad(`contexts[${ctxName}].cluster`, "missing");
  if (typeof ctx.user !== "string") throw bad(`contexts[${ctxName}].user`, "missing");
  const cluster = { ...named("clusters", ctx.cluster) };
  const user = { ...named("users", ctx.user) };
  const where = `clusters[${ctx.cluster}]`;
  if (typeof cluster.server !== "string") throw bad(`${where}.server`, "missing");
  const server = checkServer(cluster.server, `${file}: ${where}.server`);
  if (cluster["insecure-skip-tls-verify"] === true) {
    throw bad(
      `${where}.insecure-skip-tls-verify`,
      "the kubelet must check the API server: give a CA",
    );
  }
  let caPem: string;
  if (caOverride !== undefined) caPem = caOverride;
  else if (typeof cluster["certificate-authority-data"] === "string") {
    let pem: string;
    try {
      pem = atob(cluster["certificate-authority-data"].replace(/\s+/g, ""));
    } catch {
      throw bad(`${where}.certificate-authority-data`, "not base64");
    }
    caPem = checkCa(pem, `${file}: ${where}.certificate-authority-data`);
  } else if (typeof cluster["certificate-authority"] === "string") {
    const p = resolve(cluster["certificate-authority"]);
    caPem = checkCa(readUserFile(read, p, `${file}: ${where}.certificate-authority`), p);
  } else {
    throw bad(
      `${where}`,
      "no certificate-authority(-data): give the cluster's CA (or --certificate-authority)",
    );
  }
  delete cluster["certificate-authority"];
  cluster["certificate-authority-data"] = btoa(caPem);

  const uwhere = `users[${ctx.user}]`;
  const embed = (key: string) => {
    if (typeof user[key] !== "string") return;
    const p = resolve(user[key] as string);
    const body = readUserFile(read, p, `${file}: ${uwhere}.${key}`);
    delete user[key];
    user[`${key}-data`] = btoa(body);
  };
  embed("client-certificate");
  embed("client-key");
  if (typeof user.tokenFile === "string") {
    const p = resolve(user.tokenFile);
    user.token = readUserFile(read, p, `${file}: ${uwhere}.tokenFile`).trim();
    delete user.tokenFile;
  }
  const cert = typeof user["client-certificate-data"] === "string";
  const key = typeof user["client-key-data"] === "string";
  if (cert !== key) {
    throw bad(uwhere, "a client certificate needs its key, and a key its certificate");
  }
  if (!cert && typeof user.token !== "string") {
    throw bad(
      uwhere,
      "no client-certificate/client-key and no token: the kubelet has no credentials (for a bootstrap token use --server, --token, --certificate-authority)",
    );
  }
  const out = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: ctx.cluster, cluster }],
    users: [{ name: ctx.user, user }],
    contexts: [{ name: ctxName, context: { cluster: ctx.cluster, user: ctx.user } }],
    "current-context": ctxName,
  };
  return { server, caPem, text: stringify(out) };
}

/** A kubeconfig with a bearer token: the kubelet's bootstrap kubeconfig. */
export function tokenKubeconfig(server: string, caPath: string, token: string): string {
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "default", cluster: { server, "certificate-authority": caPath } }],
    users: [{ name: "kubelet-bootstrap", user: { token } }],
    contexts: [{ name: "default", context: { cluster: "default", user: "kubelet-bootstrap" } }],
    "current-context": "default",
  });
}

export interface KubeletConfigOptions {
  /** rkl's CRI socket (absolute path). */
  criSocket: string;
  /** The cluster CA, for the kubelet's client certificate authentication. */
  clientCAFile: string;
  /** The host runs cgroup v1 (legacy or hybrid): the kubelet refuses it unless failCgroupV1 is false. */
  cgroupV1: boolean;
  /** Swap is on: the kubelet refuses to start unless failSwapOn is false. */
  swapOn: boolean;
  clusterDNS?: string[];
  clusterDomain?: string;
  /** Where pods' DNS comes from (systemd-resolved hosts: its resolv.conf, not the stub). */
  resolvConf?: string;
}

/**
 * The KubeletConfiguration rkl needs: its CRI socket, the cgroupfs driver
 * (rkl's RuntimeConfig answers CGROUPFS, which overrides this field anyway),
 * QoS cgroups (rkl places each pod in the kubelet's kubepods/<qos>/pod<uid>),
 * and the API server's authentication and authorization through webhooks
 * with the cluster CA, as kubeadm writes them.
 */
export function kubeletConfig(o: KubeletConfigOptions): string {
  const lines = [
    "# written by rkl node install",
    "apiVersion: kubelet.config.k8s.io/v1beta1",
    "kind: KubeletConfiguration",
    `containerRuntimeEndpoint: ${JSON.stringify(`unix://${o.criSocket}`)}`,
    "cgroupDriver: cgroupfs",
    "cgroupsPerQOS: true",
  ];
  if (o.cgroupV1) {
    lines.push("# this host has cgroup v1: the kubelet refuses it since 1.35 unless told not to");
    lines.push("failCgroupV1: false");
  }
  if (o.swapOn) {
    lines.push("# swap is on: start anyway, and give pods no swap");
    lines.push("failSwapOn: false", "memorySwap:", "  swapBehavior: NoSwap");
  }
  lines.push(
    "authentication:",
    "  anonymous:",
    "    enabled: false",
    "  webhook:",
    "    enabled: true",
    "  x509:",
    `    clientCAFile: ${JSON.stringify(o.clientCAFile)}`,
    "authorization:",
    "  mode: Webhook",
    "rotateCertificates: true",
  );
  if (o.clusterDNS?.length) {
    lines.push("clusterDNS:", ...o.clusterDNS.map((ip) => `- ${JSON.stringify(ip)}`));
  }
  lines.push(`clusterDomain: ${JSON.stringify(o.clusterDomain ?? "cluster.local")}`);
  if (o.resolvConf) lines.push(`resolvConf: ${JSON.stringify(o.resolvConf)}`);
  return `${lines.join("\n")}\n`;
}

export interface KubeletUnitOptions {
  kubelet: string;
  config: string;
  kubeconfig: string;
  bootstrapKubeconfig?: string;
  nodeName?: string;
  nodeIp?: string;
}

/** The kubelet's command line in the unit. */
export function kubeletArgs(o: Omit<KubeletUnitOptions, "kubelet">): string[] {
  return [
    `--config=${o.config}`,
    ...(o.bootstrapKubeconfig ? [`--bootstrap-kubeconfig=${o.bootstrapKubeconfig}`] : []),
    `--kubeconfig=${o.kubeconfig}`,
    ...(o.nodeName ? [`--hostname-override=${o.nodeName}`] : []),
    ...(o.nodeIp ? [`--node-ip=${o.nodeIp}`] : []),
  ];
}

/**
 * The kubelet's unit: started after rkl and stopped with it (Requires=), as
 * kubeadm's kubelet.service restarts forever (the kubelet exits until the
 * runtime answers, and until a bootstrap's certificate is approved).
 */
export function kubeletUnit(o: KubeletUnitOptions): string {
  const q = (s: string) => /^[A-Za-z0-9_.,:=/@+-]+$/.test(s) ? s : JSON.stringify(s);
  return `# written by rkl node install
[Unit]
Description=kubelet: the Kubernetes node agent, with rkl as its container runtime
Documentation=https://kubernetes.io/docs/reference/command-line-tools-reference/kubelet/
Wants=network-online.target
After=network-online.target rkl.service
Requires=rkl.service
StartLimitIntervalSec=0

[Service]
ExecStart=${[o.kubelet, ...kubeletArgs(o)].map(q).join(" ")}
Restart=always
RestartSec=10

[Install]
WantedBy=multi-user.target
`;
}

/** Whether /sys/fs/cgroup is cgroup v1 (legacy or hybrid), from /proc/self/mountinfo. */
export function cgroupV1(mountinfo: string): boolean {
  for (const l of mountinfo.split("\n")) {
    const f = l.split(" ");
    const sep = f.indexOf("-");
    if (f[4] === "/sys/fs/cgroup" && sep > 0) return f[sep + 1] !== "cgroup2";
  }
  return true;
}

/** Whether /proc/swaps lists a swap area. */
export function swapOn(procSwaps: string): boolean {
  return procSwaps.trim().split("\n").length > 1;
}
