/**
 * `deno task test:cri`: Kubernetes' CRI conformance suite (critest v1.36.0)
 * against `rkl daemon`'s CRI, on a private socket, state root, network and
 * cgroup parent. The images critest pulls are rebuilt locally
 * (tests/cri/images.ts) and served by a docker-registry on 127.0.0.1 behind
 * mirror entries for registry.k8s.io, k8s.gcr.io and gcr.io. Prints passed /
 * failed / skipped per group and exits non-zero when any spec fails.
 *
 *   deno task test:cri                     # every group over SPDY, then Streaming over WebSocket
 *   deno task test:cri --websocket         # one pass, streaming over WebSocket
 *   deno task test:cri --focus 'PodSandbox'
 *   deno task test:cri --serve             # only the registry and daemon, for crictl; ^C ends
 */
import { cleanupEnv, makeEnv, waitForSocket } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";
import { startRegistry } from "../_helpers/oci.ts";
import { startDaemon } from "../_helpers/daemon.ts";
import { pushCriTestImages } from "./images.ts";
import { which } from "../../src/oci/runtime.ts";

class Done extends Error {}

interface Pass {
  label: string;
  focus?: string;
  skip?: string;
  websocket?: boolean;
}

/**
 * Specs the default run leaves out, each for a reason that is not rkl's:
 * they cannot pass with images rebuilt here. Everything else must pass.
 */
const KNOWN = [
  {
    spec: "public image with digest should be pulled and removed",
    why:
      "it pulls test-image-digest by the upstream image's digest, which a rebuilt image cannot have",
  },
];

const args = [...Deno.args];
const flag = (name: string) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const websocket = args.includes("--websocket");
const serve = args.includes("--serve");
for (const f of ["--websocket", "--serve"]) if (args.includes(f)) args.splice(args.indexOf(f), 1);
const focus = flag("--focus");
const skip = flag("--skip");

if (!requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki", "registry")) {
  Deno.exit(1);
}
const critest = which("critest");
if (!critest) {
  console.error("critest is not installed (scripts/setup.sh installs it)");
  Deno.exit(1);
}

const env = await makeEnv("critest", 14);
const registry = await startRegistry(`${env.dir}/registry`);
let daemon: Deno.ChildProcess | undefined;
let code = 1;
try {
  const pushed = await pushCriTestImages(registry.url, env.dir);
  console.error(`critest: ${pushed.length} images in ${registry.url}`);
  const mirrors = ["registry.k8s.io", "k8s.gcr.io", "gcr.io"].map((r) =>
    `  ${r}:\n    endpoint: ["${registry.url}"]\n    fallback: false\n`
  ).join("");
  Deno.writeTextFileSync(`${env.dir}/registries.yaml`, `mirrors:\n${mirrors}`);
  const sock = `${env.dir}/cri/rkl.sock`;
  Deno.mkdirSync(`${env.dir}/manifests`, { recursive: true });
  daemon = startDaemon(
    { ...env, env: { ...env.env, RKL_REGISTRIES_CONFIG: `${env.dir}/registries.yaml` } },
    `${env.dir}/manifests`,
    {
      args: ["--cri-socket", sock],
      stderr: Deno.env.get("RKL_CRITEST_LOG") ? "inherit" : "null",
    },
  );
  await waitForSocket("the CRI socket", sock, 30_000);
  if (serve) {
    console.log(`export CONTAINER_RUNTIME_ENDPOINT=unix://${sock}`);
    console.log(`export IMAGE_SERVICE_ENDPOINT=unix://${sock}`);
    const stop = Promise.withResolvers<void>();
    Deno.addSignalListener("SIGINT", () => stop.resolve());
    await stop.promise;
    await cleanupCri(sock);
    throw new Done();
  }
  // The default run is two passes: every group over SPDY, then the
  // streaming specs again over WebSocket (the -websocket-* flags change
  // nothing else). --focus/--skip/--websocket give one pass as asked.
  const passes: Pass[] = focus || skip || websocket
    ? [{ label: websocket ? "websocket" : "spdy", focus, skip, websocket }]
    : [
      { label: "spdy", skip: KNOWN.map((k) => k.spec).join("|") },
      { label: "websocket", focus: "Streaming", websocket: true },
    ];
  let failed = 0;
  let exitBad = false;
  let log = "";
  for (const pass of passes) {
    const report = `${env.dir}/critest-${pass.label}.xml`;
    const run = await new Deno.Command(critest, {
      args: [
        `-runtime-endpoint=unix://${sock}`,
        `-image-endpoint=unix://${sock}`,
        `-ginkgo.junit-report=${report}`,
        "-ginkgo.no-color",
        ...(pass.focus ? [`-ginkgo.focus=${pass.focus}`] : []),
        ...(pass.skip ? [`-ginkgo.skip=${pass.skip}`] : []),
        ...(pass.websocket
          ? ["-websocket-exec", "-websocket-attach", "-websocket-portforward"]
          : []),
        ...args,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    log += `=== ${pass.label}\n${dec.decode(run.stdout)}${dec.decode(run.stderr)}`;
    Deno.copyFileSync(report, `${REPO}/critest-${pass.label}.xml`);
    const groups = summarize(Deno.readTextFileSync(report));
    console.log(`${pass.label}: group\tpassed\tfailed\tskipped`);
    for (const [g, c] of [...groups].sort()) {
      if (c.passed + c.failed > 0 || pass.label === "spdy") {
        console.log(`${pass.label}: ${g}\t${c.passed}\t${c.failed}\t${c.skipped}`);
      }
      failed += c.failed;
    }
    for (const [g, c] of groups) {
      for (const f of c.failures) console.log(`FAILED [${pass.label}] [${g}] ${f}`);
    }
    console.error(`critest (${pass.label}): exit ${run.code}`);
    if (run.code !== 0) exitBad = true;
  }
  Deno.writeTextFileSync(`${REPO}/critest.log`, log);
  if (passes.length > 1) {
    for (const k of KNOWN) console.log(`not run: ${k.spec}: ${k.why}`);
  }
  console.error("critest: full output in critest.log");
  code = failed > 0 || exitBad ? 1 : 0;
} catch (e) {
  if (!(e instanceof Done)) throw e;
  code = 0;
} finally {
  // What a failed or timed-out spec left (critest's own clean-up did not run for it).
  if (daemon) await cleanupCri(`${env.dir}/cri/rkl.sock`).catch(() => {});
  if (daemon) {
    try {
      daemon.kill("SIGTERM");
    } catch { /* gone */ }
    await daemon.status;
  }
  await registry.stop();
  await cleanupEnv(env);
}
Deno.exit(code);

/** Removes what was made through the socket (a `--serve` session's pods), as crictl would. */
async function cleanupCri(sock: string): Promise<void> {
  const run = (a: string[]) =>
    new Deno.Command("crictl", { args: ["-r", `unix://${sock}`, ...a], stderr: "null" }).output();
  const pods = new TextDecoder().decode((await run(["pods", "-q"])).stdout).split("\n");
  for (const p of pods.filter(Boolean)) await run(["rmp", "-f", p]);
}

/** passed/failed/skipped per group (the first words after `[k8s.io]`) from a JUnit report. */
function summarize(xml: string) {
  const out = new Map<
    string,
    { passed: number; failed: number; skipped: number; failures: string[] }
  >();
  for (const m of xml.matchAll(/<testcase name="([^"]*)"[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const name = m[1].replaceAll("&#34;", '"').replaceAll("&#39;", "'").replaceAll("&amp;", "&")
      .replace(/^\[It\] /, "");
    if (!name.startsWith("[k8s.io]")) continue; // suite set-up nodes ([BeforeSuite], ...)
    const g = groupOf(name);
    const c = out.get(g) ?? { passed: 0, failed: 0, skipped: 0, failures: [] };
    const body = m[3] ?? "";
    if (/<skipped/.test(body)) c.skipped++;
    else if (/<failure|<error/.test(body)) {
      c.failed++;
      c.failures.push(name.replace(/^\[k8s\.io\] /, ""));
    } else c.passed++;
    out.set(g, c);
  }
  return out;
}

function groupOf(name: string): string {
  const rest = name.replace(/^\[k8s\.io\] /, "");
  const groups = [
    "Container Mount Propagation",
    "Container Mount Readonly",
    "Container OOM",
    "Image Consistency",
    "Image Identifier Consistency",
    "Image Manager",
    "Multiple Containers",
    "Runtime info",
    "Security Context",
    "AppArmor",
    "Idempotence",
    "Networking",
    "Streaming",
    "PodSandbox",
    "Container",
  ];
  return groups.find((g) => rest.startsWith(g)) ?? rest.split(" ")[0];
}
