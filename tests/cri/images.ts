/**
 * The images critest pulls (../shared/cri-tools/images.txt), rebuilt here
 * on upstream busybox (scripts/busybox.sh) and pushed under their upstream
 * repository paths into a local registry, so a mirror entry keeps their
 * names. What each holds follows the upstream Dockerfiles' facts (see the
 * cri-tools README): a file added per test image, USER settings, a web
 * server on port 80 (tests/cri/src/nginx.c stands in for nginx and httpd),
 * a setuid program for no_new_privs, and the ipcs and pgrep the images had
 * when they were built on Debian's busybox (which has neither).
 */
import { type Member, pushImage, tarBytes } from "../_helpers/oci.ts";
import { REPO } from "../_helpers/requires.ts";
import { which } from "../../src/oci/runtime.ts";

const PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

function file(name: string, data: string, mode = 0o644): Member {
  return { name, data, mode };
}

/** /etc/passwd and /etc/group with the users the user-images name. */
export const USERS: Member[] = [
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

export interface PushedImage {
  ref: string;
  digest: string;
}

/** Builds the stand-in programs (tests/cri/src/*.c) static with gcc. */
export async function buildPrograms(
  dir: string,
  names = ["nginx", "nonewprivs", "ipcs", "pgrep"],
): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for (const name of names) {
    const bin = `${dir}/${name}`;
    const r = await new Deno.Command("gcc", {
      args: ["-static", "-O2", "-o", bin, `${REPO}/tests/cri/src/${name}.c`],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (r.code !== 0) {
      throw new Error(`gcc ${name}.c: ${new TextDecoder().decode(r.stderr)}`);
    }
    out[name] = Deno.readFileSync(bin);
  }
  return out;
}

/** The upstream busybox scripts/busybox.sh built (scripts/setup.sh runs it). */
export async function upstreamBusybox(): Promise<string> {
  const r = await new Deno.Command("bash", {
    args: [`${REPO}/scripts/busybox.sh`, "--path"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) throw new Error(new TextDecoder().decode(r.stderr).trim());
  return new TextDecoder().decode(r.stdout).trim();
}

/**
 * The busybox image's tree on upstream busybox (scripts/busybox.sh), whose
 * `sh` execs other programs as any shell does, where Debian's runs its
 * applets in-process: the usual top-level directories, /bin/busybox and
 * every applet `busybox --list` names as a hard link to it (as the upstream
 * busybox image has them: masking /bin/ls must mask ls, not busybox), with
 * tests/cri/src's ipcs and pgrep in place of busybox's.
 */
export async function appletLayer(programs: Record<string, Uint8Array>): Promise<Uint8Array> {
  const bin = await upstreamBusybox();
  const r = await new Deno.Command(bin, { args: ["--list"], stdout: "piped", stderr: "piped" })
    .output();
  if (!r.success) throw new Error(`${bin} --list: ${new TextDecoder().decode(r.stderr).trim()}`);
  const own = new Set(["busybox", "ipcs", "pgrep"]);
  const applets = new TextDecoder().decode(r.stdout).split("\n").filter((a) =>
    a !== "" && !own.has(a)
  );
  if (!applets.includes("sh")) throw new Error(`${bin} --list names no sh`);
  const members: Member[] = [
    ..."bin dev etc proc root run sbin sys usr usr/bin var var/www".split(" ").map((d) => ({
      name: `${d}/`,
      type: "dir" as const,
    })),
    { name: "tmp/", type: "dir", mode: 0o1777 },
    { name: "bin/busybox", data: Deno.readFileSync(bin), mode: 0o755 },
  ];
  for (const a of applets) {
    if (!/^[\w.\[-]+$/.test(a)) throw new Error(`${bin} --list: unexpected applet name ${a}`);
    // a link member's mode goes to the file it links (as in containerd): busybox's
    members.push({ name: `bin/${a}`, type: "link", linkname: "bin/busybox", mode: 0o755 });
  }
  members.push({ name: "bin/ipcs", data: programs.ipcs, mode: 0o755 });
  members.push({ name: "bin/pgrep", data: programs.pgrep, mode: 0o755 });
  return tarBytes(members);
}

/** Pushes every critest image to `url`; answers what was pushed. */
export async function pushCriTestImages(url: string, workDir: string): Promise<PushedImage[]> {
  const programs = await buildPrograms(workDir);
  const applets = await appletLayer(programs);
  const users = tarBytes(USERS);
  const out: PushedImage[] = [];
  const push = async (
    ref: string,
    extra: Member[],
    config: Record<string, unknown> = {},
  ) => {
    const [repoPath, tag] = ref.split(":");
    const repo = repoPath.slice(repoPath.indexOf("/") + 1);
    const layers = [applets, users, ...(extra.length > 0 ? [tarBytes(extra)] : [])];
    const r = await pushImage(url, repo, tag, {
      layers,
      config: { Env: [PATH], Cmd: ["sh"], ...config },
    });
    out.push({ ref, digest: r.digest });
  };
  const e2e = "registry.k8s.io/e2e-test-images";
  const staging = "gcr.io/k8s-staging-cri-tools";
  await push(`${e2e}/busybox:1.29-2`, []);
  const web = (port: number): [Member[], Record<string, unknown>] => [
    [
      { name: "usr/", type: "dir" },
      { name: "usr/sbin/", type: "dir" },
      { name: "usr/sbin/nginx", data: programs.nginx, mode: 0o755 },
    ],
    {
      Env: [PATH, `PORT=${port}`],
      Cmd: ["/usr/sbin/nginx"],
      ExposedPorts: { [`${port}/tcp`]: {} },
    },
  ];
  await push(`${e2e}/nginx:1.14-2`, ...web(80));
  await push(`${e2e}/httpd:2.4.39-4`, [
    { name: "usr/", type: "dir" },
    { name: "usr/local/", type: "dir" },
    { name: "usr/local/apache2/", type: "dir" },
    { name: "usr/local/apache2/bin/", type: "dir" },
    { name: "usr/local/apache2/bin/httpd", data: programs.nginx, mode: 0o755 },
  ], {
    Env: [`PATH=/usr/local/apache2/bin:/bin:/sbin:/usr/bin:/usr/sbin`, "PORT=80"],
    Cmd: ["httpd", "-D", "FOREGROUND"],
    ExposedPorts: { "80/tcp": {} },
  });
  await push(`${staging}/hostnet-nginx-amd64:latest`, ...web(12003));
  await push(`${e2e}/nonewprivs:1.3`, [
    { name: "usr/", type: "dir" },
    { name: "usr/local/", type: "dir" },
    { name: "usr/local/bin/", type: "dir" },
    { name: "usr/local/bin/nnp", data: programs.nonewprivs, mode: 0o4755 },
  ], { Cmd: ["/usr/local/bin/nnp"] });
  await push("registry.k8s.io/pause:3.9", [], { Cmd: ["sleep", "infinity"] });
  await push("k8s.gcr.io/pause:3.9", [], { Cmd: ["sleep", "infinity"] });
  // The sandboxes' pause image (rkl's default): catatonit in pause mode as /pause.
  const catatonit = which("catatonit");
  if (!catatonit) throw new Error("catatonit is not installed (scripts/setup.sh installs it)");
  await push("registry.k8s.io/pause:3.10", [
    { name: "pause", data: Deno.readFileSync(catatonit), mode: 0o755 },
  ], { Entrypoint: ["/pause", "-P"], Cmd: [] });
  const marked = (name: string) => [{ name: name.replace(/[:/]/g, "_"), data: `${name}\n` }];
  for (const t of ["test-image-latest:latest", "test-image-tag:test", "test-image-tag:all"]) {
    await push(`${staging}/${t}`, marked(t));
  }
  for (const n of [1, 2, 3]) await push(`${staging}/test-image-${n}:latest`, marked(`image-${n}`));
  // One image under three tags: the same bytes, so one digest.
  for (const n of [1, 2, 3]) await push(`${staging}/test-image-tags:${n}`, marked("tags"));
  await push(`${staging}/test-image-user-uid:latest`, [], { User: "1002" });
  await push(`${staging}/test-image-user-username:latest`, [], { User: "www-data" });
  await push(`${staging}/test-image-user-uid-group:latest`, [], { User: "1003:1003" });
  await push(`${staging}/test-image-user-username-group:latest`, [], {
    User: "www-data:www-data",
  });
  await push(`${staging}/test-image-predefined-group:latest`, [], { User: "1000" });
  return out;
}
