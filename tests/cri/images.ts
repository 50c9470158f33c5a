/**
 * The images critest pulls (../shared/cri-tools/images.txt), rebuilt here
 * from the busybox bundle's rootfs and pushed under their upstream
 * repository paths into a local registry, so a mirror entry keeps their
 * names. What each holds follows the upstream Dockerfiles' facts (see the
 * cri-tools README): a file added per test image, USER settings, a web
 * server on port 80 (busybox httpd stands in for nginx and httpd).
 */
import { dirTar, type Member, pushImage, tarBytes } from "../_helpers/oci.ts";
import { REPO } from "../_helpers/requires.ts";

const PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

function file(name: string, data: string, mode = 0o644): Member {
  return { name, data, mode };
}

/** /etc/passwd and /etc/group with the users the user-images name. */
const USERS: Member[] = [
  { name: "etc/", type: "dir" },
  file(
    "etc/passwd",
    "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/sh\n" +
      "default-user:x:1000:1000::/home/default-user:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n",
  ),
  file(
    "etc/group",
    "root:x:0:\nwww-data:x:33:\ndefault-user:x:1000:\ngroup50000:x:50000:default-user\nnogroup:x:65534:\n",
  ),
];

function web(port: number): Member[] {
  return [
    { name: "var/", type: "dir" },
    { name: "var/www/", type: "dir" },
    file("var/www/index.html", "<html><body><h1>Welcome to nginx!</h1></body></html>\n"),
    { name: "etc/", type: "dir" },
    file("etc/rkl-web-port", `${port}\n`),
  ];
}

export interface PushedImage {
  ref: string;
  digest: string;
}

/** Pushes every critest image to `url`; answers what was pushed. */
export async function pushCriTestImages(url: string): Promise<PushedImage[]> {
  const base = await dirTar(`${REPO}/bundles/busybox/rootfs`);
  const users = tarBytes(USERS);
  const out: PushedImage[] = [];
  const push = async (
    ref: string,
    extra: Member[],
    config: Record<string, unknown> = {},
  ) => {
    const [repoPath, tag] = ref.split(":");
    const repo = repoPath.slice(repoPath.indexOf("/") + 1);
    const layers = [base, users, ...(extra.length > 0 ? [tarBytes(extra)] : [])];
    const r = await pushImage(url, repo, tag, {
      layers,
      config: { Env: [PATH], Cmd: ["sh"], ...config },
    });
    out.push({ ref, digest: r.digest });
  };
  const e2e = "registry.k8s.io/e2e-test-images";
  const staging = "gcr.io/k8s-staging-cri-tools";
  await push(`${e2e}/busybox:1.29-2`, []);
  const httpd = (port: number) => ({
    Cmd: ["httpd", "-f", "-p", String(port), "-h", "/var/www"],
    ExposedPorts: { [`${port}/tcp`]: {} },
  });
  await push(`${e2e}/nginx:1.14-2`, web(80), httpd(80));
  await push(`${e2e}/httpd:2.4.39-4`, web(80), httpd(80));
  await push(`${staging}/hostnet-nginx-amd64:latest`, web(12003), httpd(12003));
  // nonewprivs: a setuid-root program printing the effective uid; busybox
  // as setuid root keeps its euid for `id -u` only with suid applets, so
  // the image carries a copy that the test checks with no_new_privs on/off.
  await push(`${e2e}/nonewprivs:1.3`, [
    { name: "usr/", type: "dir" },
    { name: "usr/local/", type: "dir" },
    { name: "usr/local/bin/", type: "dir" },
    file("usr/local/bin/nnp", "#!/bin/sh\nid -u\n", 0o4755),
  ], { Cmd: ["/usr/local/bin/nnp"] });
  await push("registry.k8s.io/pause:3.9", [], { Cmd: ["sleep", "infinity"] });
  await push("k8s.gcr.io/pause:3.9", [], { Cmd: ["sleep", "infinity"] });
  const marked = (name: string) => [file(`${name.replace(/[:/]/g, "_")}`, `${name}\n`)];
  for (const t of ["test-image-latest:latest", "test-image-tag:test", "test-image-tag:all"]) {
    await push(`${staging}/${t}`, marked(t));
  }
  for (const n of [1, 2, 3]) await push(`${staging}/test-image-${n}:latest`, marked(`image-${n}`));
  // One image under three tags: the same bytes, so one digest.
  for (const n of [1, 2, 3]) await push(`${staging}/test-image-tags:${n}`, marked("tags"));
  await push(`${staging}/test-image-user-uid:latest`, [], { User: "1002" });
  await push(`${staging}/test-image-user-username:latest`, [], { User: "www-data" });
  await push(`${staging}/test-image-user-uid-group:latest`, [], { User: "1003:1003" });
  await push(`${staging}/test-image-user-username-group:latest`, [], { User: "www-data:www-data" });
  await push(`${staging}/test-image-predefined-group:latest`, [], { User: "1000" });
  return out;
}
