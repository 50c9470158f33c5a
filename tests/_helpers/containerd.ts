/** containerd 1.6 (Debian's package) as a peer: its config for a private state dir. */

export interface ContainerdConfig {
  /** containerd's root and state dirs (both private). */
  root: string;
  state: string;
  /** Its gRPC socket (the ttrpc socket goes beside it). */
  sock: string;
  /** runc's root for containerd's containers. */
  runcRoot: string;
  sandboxImage: string;
  cniBin: string;
  cniConfDir: string;
  /** Registry host → mirror URL (e.g. 127.0.0.1's registry). */
  mirrors: Record<string, string>;
}

/**
 * config.toml (version 2) for containerd's CRI with runc, overlayfs, the CNI
 * plugins and mirrors given, on a private root, state and socket; the
 * snapshotters and tracing this host cannot use are turned off.
 */
export function containerdConfig(c: ContainerdConfig): string {
  const cri = `plugins."io.containerd.grpc.v1.cri"`;
  return [
    "version = 2",
    `root = "${c.root}"`,
    `state = "${c.state}"`,
    `disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",` +
    ` "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",` +
    ` "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]`,
    "[grpc]",
    `  address = "${c.sock}"`,
    "[ttrpc]",
    `  address = "${c.sock}.ttrpc"`,
    `[plugins."io.containerd.internal.v1.opt"]`,
    `  path = "${c.root}/opt"`,
    `[${cri}]`,
    `  sandbox_image = "${c.sandboxImage}"`,
    `  stream_server_address = "127.0.0.1"`,
    `  stream_server_port = "0"`,
    // This host gives no CAP_SYS_RESOURCE: the pause container's oom_score_adj of -998 would
    // fail in runc's nsexec; containerd's own option caps it at containerd's value.
    `  restrict_oom_score_adj = true`,
    `[${cri}.containerd]`,
    `  snapshotter = "overlayfs"`,
    `  default_runtime_name = "runc"`,
    `[${cri}.containerd.runtimes.runc]`,
    `  runtime_type = "io.containerd.runc.v2"`,
    `[${cri}.containerd.runtimes.runc.options]`,
    `  BinaryName = "runc"`,
    `  Root = "${c.runcRoot}"`,
    `  SystemdCgroup = false`,
    `[${cri}.cni]`,
    `  bin_dir = "${c.cniBin}"`,
    `  conf_dir = "${c.cniConfDir}"`,
    `  max_conf_num = 1`,
    ...Object.entries(c.mirrors).flatMap(([host, url]) => [
      `[${cri}.registry.mirrors."${host}"]`,
      `  endpoint = ["${url}"]`,
    ]),
    "",
  ].join("\n");
}
