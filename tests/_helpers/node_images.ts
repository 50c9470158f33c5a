/**
 * Stand-ins for the images the node e2e suite (e2e_node.test, [NodeConformance])
 * pulls, with the upstream names, users and entrypoints (facts from
 * kubernetes' test/images/*\/Dockerfile), built on upstream busybox (below)
 * with tests/cri/images.ts' users and programs, and pushed to a local
 * registry under their registry.k8s.io paths (a mirror entry keeps the names):
 *
 * - e2e-test-images/busybox:1.37.0-1: upstream busybox 1.37.0 built static by
 *   scripts/busybox.sh (the release tarball, `make defconfig` plus what
 *   docker-library's image sets, no distribution patches), its applets as
 *   hard links in /bin (`busybox --install /bin` in upstream's image),
 *   /usr/bin/env linking to /bin/env, `sh`, and tests/node_e2e/nmeter.c over
 *   its nmeter (youki leaves SIGPIPE ignored in containers: see there).
 *   Every busybox-based image here is built on it; the bundles/busybox rootfs (Debian's busybox-static 1.35, whose
 *   ash drops environment variables that are not identifiers and whose nc has
 *   no -u) is not used.
 * - e2e-test-images/agnhost:2.63.0: the real agnhost (../shared/k8s, v1.36.3's
 *   test/images/agnhost) as /agnhost, /agnhost-2 linking to it, /uploads,
 *   ENTRYPOINT ["/agnhost"], CMD ["pause"], ports 80 8080 8081 9376, a
 *   self-signed /localhost.crt and /localhost.key (openssl), the host's
 *   /bin/bash with its libraries. Upstream's
 *   Alpine tools are stood in for by busybox applets (nc, ip, wget, nslookup)
 *   and a small curl (tests/cri/src/curl.c); see NODE_IMAGE_GAPS.
 * - e2e-test-images/nginx:1.15-4: tests/cri/src/nginx.c on port 80, CMD
 *   ["nginx", "-g", "daemon off;"], as the nginx:1.15-alpine it mirrors.
 * - e2e-test-images/nonroot:1.5: busybox with USER 1234.
 * - e2e-test-images/nonewprivs:1.4: busybox with a setuid-root
 *   /usr/local/bin/nnp printing `Effective uid: N`, CMD ["nnp"].
 * - e2e-test-images/glibc-dns-testing:2.0.0: busybox (`sh`, `hostname -f`
 *   answering from /etc/hosts), for the pod hostname/FQDN specs.
 *   /var/registry/pause holds pause:3.10.2 as `pause:testing` for
 *   `agnhost fake-registry-server` (the private registry pull spec).
 * - pause:3.10.2: catatonit in pause mode as /pause, USER 65535:65535.
 */
import { buildPrograms, upstreamBusybox, USERS } from "../cri/images.ts";
import { type Member, pushImage, sha, tarBytes } from "./oci.ts";
import { REPO } from "./requires.ts";
import { which } from "../../src/oci/runtime.ts";

const PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const E2E = "registry.k8s.io/e2e-test-images";

export const NODE_IMAGES = {
  busybox: `${E2E}/busybox:1.37.0-1`,
  agnhost: `${E2E}/agnhost:2.63.0`,
  nginx: `${E2E}/nginx:1.15-4`,
  nonroot: `${E2E}/nonroot:1.5`,
  nonewprivs: `${E2E}/nonewprivs:1.4`,
  glibcDnsTesting: `${E2E}/glibc-dns-testing:2.0.0`,
  pause: "registry.k8s.io/pause:3.10.2",
} as const;

/** What the stand-ins lack against upstream's images, for the docs and a conformance run's skips. */
export const NODE_IMAGE_GAPS = [
  "agnhost: no dig, iperf, coredns, ss; nc is busybox's (-u, -w, -z, -v, -l; not netcat-openbsd's other flags); curl is a stand-in for http:// to IP addresses only (no TLS, no DNS names)",
  "nginx: one static server answering every request with a small page (no nginx.conf, no /usr/share/nginx/html)",
  "busybox: upstream 1.37.0 linked statically (upstream's glibc image links it dynamically and carries libc, libnss and getconf); /etc/passwd and /etc/group are the CRI stand-ins' (tests/cri/images.ts USERS), not buildroot's",
];

/** Where ../shared/k8s is: RKL_K8S_SHARED, beside the checkout, or the workplace's. */
export function sharedK8sDir(): string | undefined {
  for (
    const d of [Deno.env.get("RKL_K8S_SHARED"), `${REPO}/../shared/k8s`, "/work/shared/k8s"]
  ) {
    if (!d) continue;
    try {
      if (Deno.statSync(`${d}/unpack.sh`).isFile) return d;
    } catch { /* not here */ }
  }
  return undefined;
}

/**
 * The unpacked agnhost: shared/ is read-only in CI and holds it xz-packed,
 * so its unpack.sh checks and unpacks it into RKL_K8S_CACHE
 * (/var/cache/rkl-k8s), once; a lock keeps concurrent runs apart.
 */
export async function agnhostBinary(): Promise<string> {
  const shared = sharedK8sDir();
  if (!shared) throw new Error("../shared/k8s (agnhost.xz, unpack.sh) is not there");
  const cache = Deno.env.get("RKL_K8S_CACHE") ?? "/var/cache/rkl-k8s";
  const r = await new Deno.Command("flock", {
    args: ["/tmp/rkl-k8s-unpack.lock", `${shared}/unpack.sh`, cache],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!r.success) throw new Error(`unpack.sh: ${new TextDecoder().decode(r.stderr)}`);
  return `${cache}/agnhost`;
}

const dirs = (...names: string[]): Member[] => names.map((name) => ({ name, type: "dir" }));

/**
 * The self-signed localhost certificate and key agnhost's image carries as
 * /localhost.crt and /localhost.key (`netexec --tls-cert-file`: the https
 * lifecycle hook specs), made here with openssl.
 */
async function localhostCert(workDir: string): Promise<{ crt: Uint8Array; key: Uint8Array }> {
  const crt = `${workDir}/localhost.crt`;
  const key = `${workDir}/localhost.key`;
  const r = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      crt,
      "-days",
      "30",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!r.success) throw new Error(`openssl req: ${new TextDecoder().decode(r.stderr).trim()}`);
  return { crt: Deno.readFileSync(crt), key: Deno.readFileSync(key) };
}

/**
 * A host program with the shared libraries `ldd` names (their real files
 * under the paths it gives, and their directories): the host's bash stands in
 * for Alpine's in agnhost's image (probe specs run `/bin/bash -c`).
 */
async function hostProgram(path: string): Promise<Member[]> {
  const r = await new Deno.Command("ldd", { args: [path], stdout: "piped", stderr: "piped" })
    .output();
  if (!r.success) throw new Error(`ldd ${path}: ${new TextDecoder().decode(r.stderr).trim()}`);
  const libs = [...new TextDecoder().decode(r.stdout).matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]);
  const out: Member[] = [];
  const seen = new Set<string>();
  for (const file of libs) {
    const parts = file.slice(1).split("/");
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join("/") + "/";
      if (!seen.has(d) && d !== "bin/") {
        seen.add(d);
        out.push({ name: d, type: "dir" });
      }
    }
    out.push({
      name: file.slice(1),
      data: Deno.readFileSync(Deno.realPathSync(file)),
      mode: 0o755,
    });
  }
  out.push({ name: path.slice(1), data: Deno.readFileSync(Deno.realPathSync(path)), mode: 0o755 });
  return out;
}

/**
 * The busybox image's tree: the usual top-level directories, /bin/busybox
 * and every applet `busybox --list` names as a hard link to it in /bin (as
 * upstream's image installs them: masking /bin/ls masks ls, not busybox),
 * /usr/bin/env linking to /bin/env.
 */
async function busyboxLayer(bin: string): Promise<Uint8Array> {
  const r = await new Deno.Command(bin, { args: ["--list"], stdout: "piped", stderr: "piped" })
    .output();
  if (!r.success) throw new Error(`${bin} --list: ${new TextDecoder().decode(r.stderr).trim()}`);
  const applets = new TextDecoder().decode(r.stdout).split("\n").filter((a) =>
    a !== "" && a !== "busybox"
  );
  if (!applets.includes("sh")) throw new Error(`${bin} --list names no sh`);
  const members: Member[] = [
    ...dirs("bin/", "dev/", "etc/", "proc/", "root/", "run/", "sbin/", "sys/"),
    { name: "tmp/", type: "dir", mode: 0o1777 },
    ...dirs("usr/", "usr/bin/", "var/", "var/www/"),
    { name: "bin/busybox", data: Deno.readFileSync(bin), mode: 0o755 },
  ];
  for (const a of applets) {
    if (!/^[\w.\[-]+$/.test(a)) throw new Error(`${bin} --list: unexpected applet name ${a}`);
    // a link member's mode goes to the file it links (as in containerd): busybox's
    members.push({ name: `bin/${a}`, type: "link", linkname: "bin/busybox", mode: 0o755 });
  }
  members.push({ name: "usr/bin/env", type: "symlink", linkname: "../../bin/env" });
  return tarBytes(members);
}

/** tests/node_e2e/nmeter.c, static. */
async function buildNmeter(workDir: string): Promise<Uint8Array> {
  const bin = `${workDir}/nmeter`;
  const r = await new Deno.Command("gcc", {
    args: ["-static", "-O2", "-o", bin, `${REPO}/tests/node_e2e/nmeter.c`],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!r.success) throw new Error(`gcc nmeter.c: ${new TextDecoder().decode(r.stderr)}`);
  return Deno.readFileSync(bin);
}

/**
 * `agnhost fake-registry-server`'s content, as upstream's agnhost image has it
 * (test/images/agnhost/fakeregistryserver: images.txt `pause 3.10.1 testing`),
 * in the layout v1.36.3's server reads (seen with strace: docker-registry's
 * storage paths): /var/registry/NAME/manifests/TAG holding a digest,
 * /var/registry/NAME/manifests/sha256/XX/HEX/data the manifest and
 * /var/registry/NAME/blobs/sha256/XX/HEX/data its config and layers, readable
 * by any uid (the spec runs it as 5123; `--private` asks for user:password).
 * Read back from the registry `ref` was pushed to. The "pull from private
 * registry with secret" spec pulls `localhost:5000/pause:testing` from it.
 */
async function fakeRegistryTree(
  url: string,
  ref: string,
  name: string,
  tag: string,
): Promise<Member[]> {
  const [repoPath, refTag] = ref.split(/:(?=[^:]+$)/);
  const repo = repoPath.slice(repoPath.indexOf("/") + 1);
  const get = async (path: string, accept?: string) => {
    const r = await fetch(`${url}/v2/${repo}/${path}`, {
      headers: accept ? { accept } : {},
    });
    if (!r.ok) throw new Error(`GET ${url}/v2/${repo}/${path}: ${r.status}`);
    return new Uint8Array(await r.arrayBuffer());
  };
  const manifest = await get(
    `manifests/${refTag}`,
    "application/vnd.oci.image.manifest.v1+json",
  );
  const digest = sha(manifest);
  const m = JSON.parse(new TextDecoder().decode(manifest)) as {
    config: { digest: string };
    layers: { digest: string }[];
  };
  const root = `var/registry/${name}`;
  const out: Member[] = [
    ...dirs("var/", "var/registry/", `${root}/`, `${root}/manifests/`, `${root}/blobs/`),
    {
      name: `${root}/manifests/${tag}`,
      data: new TextEncoder().encode(`${digest}\n`),
      mode: 0o644,
    },
  ];
  const seen = new Set<string>();
  const put = (kind: "manifests" | "blobs", d: string, data: Uint8Array) => {
    const hex = d.replace(/^sha256:/, "");
    for (
      const dir of ["sha256/", `sha256/${hex.slice(0, 2)}/`, `sha256/${hex.slice(0, 2)}/${hex}/`]
    ) {
      if (!seen.has(`${kind}/${dir}`)) out.push({ name: `${root}/${kind}/${dir}`, type: "dir" });
      seen.add(`${kind}/${dir}`);
    }
    out.push({ name: `${root}/${kind}/sha256/${hex.slice(0, 2)}/${hex}/data`, data, mode: 0o644 });
  };
  put("manifests", digest, manifest);
  for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)]) {
    put("blobs", d, await get(`blobs/${d}`));
  }
  return out;
}

export interface Pushed {
  ref: string;
  digest: string;
}

/** Builds and pushes every stand-in to the registry at `url`; `workDir` takes the compiled programs. */
export async function pushNodeImages(url: string, workDir: string): Promise<Pushed[]> {
  const programs = await buildPrograms(workDir, ["nginx", "nonewprivs", "curl"]);
  const base = await busyboxLayer(await upstreamBusybox());
  // over upstream's nmeter, which youki's ignored SIGPIPE makes print an error (nmeter.c)
  const nmeter = tarBytes([{ name: "bin/nmeter", data: await buildNmeter(workDir), mode: 0o755 }]);
  const users = tarBytes(USERS);
  const out: Pushed[] = [];
  const push = async (ref: string, extra: Member[], config: Record<string, unknown>) => {
    const [repoPath, tag] = ref.split(/:(?=[^:]+$)/);
    const repo = repoPath.slice(repoPath.indexOf("/") + 1);
    const layers = [base, nmeter, users, ...(extra.length > 0 ? [tarBytes(extra)] : [])];
    const r = await pushImage(url, repo, tag, {
      layers,
      config: { Env: [PATH], Cmd: ["sh"], ...config },
    });
    out.push({ ref, digest: r.digest });
  };
  await push(NODE_IMAGES.busybox, [], {});
  await push(NODE_IMAGES.nonroot, [], { User: "1234" });
  await push(NODE_IMAGES.glibcDnsTesting, [], {});
  await push(NODE_IMAGES.nonewprivs, [
    ...dirs("usr/", "usr/local/", "usr/local/bin/"),
    { name: "usr/local/bin/nnp", data: programs.nonewprivs, mode: 0o6755 },
  ], { Cmd: ["nnp"] });
  await push(NODE_IMAGES.nginx, [
    ...dirs("usr/", "usr/sbin/", "var/", "var/run/"),
    { name: "usr/sbin/nginx", data: programs.nginx, mode: 0o755 },
  ], {
    Env: [PATH, "NGINX_VERSION=1.15.12"],
    Cmd: ["nginx", "-g", "daemon off;"],
    ExposedPorts: { "80/tcp": {} },
    StopSignal: "SIGTERM",
  });
  // pause first: agnhost's image carries it as its fake registry's content.
  const catatonit = which("catatonit");
  if (!catatonit) throw new Error("catatonit is not installed (scripts/setup.sh installs it)");
  await push(NODE_IMAGES.pause, [
    { name: "pause", data: Deno.readFileSync(catatonit), mode: 0o755 },
  ], { Entrypoint: ["/pause", "-P"], Cmd: [], User: "65535:65535" });
  const tls = await localhostCert(workDir);
  const bash = await hostProgram("/bin/bash");
  await push(NODE_IMAGES.agnhost, [
    { name: "agnhost", data: Deno.readFileSync(await agnhostBinary()), mode: 0o755 },
    { name: "localhost.crt", data: tls.crt, mode: 0o644 },
    { name: "localhost.key", data: tls.key, mode: 0o644 },
    ...bash,
    { name: "agnhost-2", type: "symlink", linkname: "agnhost" },
    ...dirs("uploads/", "usr/", "usr/bin/"),
    { name: "usr/bin/curl", data: programs.curl, mode: 0o755 },
    ...await fakeRegistryTree(url, NODE_IMAGES.pause, "pause", "testing"),
  ], {
    Entrypoint: ["/agnhost"],
    Cmd: ["pause"],
    ExposedPorts: { "80/tcp": {}, "8080/tcp": {}, "8081/tcp": {}, "9376/tcp": {} },
  });
  return out;
}

/** `deno run -A tests/_helpers/node_images.ts REGISTRY_URL`: push them to a registry already running. */
if (import.meta.main) {
  const url = Deno.args[0];
  if (!url?.startsWith("http")) {
    console.error("usage: node_images.ts http://127.0.0.1:PORT");
    Deno.exit(2);
  }
  const dir = await Deno.makeTempDir({ prefix: "rkl-node-images-" });
  try {
    for (const p of await pushNodeImages(url, dir)) console.log(`${p.ref}\t${p.digest}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
