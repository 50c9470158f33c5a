/**
 * youki's cache of compiled seccomp filters (rkl's patch:
 * scripts/youki/libcontainer-seccomp-cache.patch). youki compiles the profile
 * once, keeps the program in `<runtime root>/.seccomp-cache/`, and loads it
 * from there on the next create or exec. What must hold: every container is
 * confined whether its filter came from the cache or not; a cache file is
 * used only while it is root's, writable by no one else and intact, and is
 * otherwise compiled again and replaced (a new inode: the test tells a hit
 * from a rewrite by it).
 *
 * The probe: the default profile allows unshare(2) only with CAP_SYS_ADMIN,
 * which a container lacks, while a user namespace needs no capability, so
 * `unshare -U true` fails under the filter and succeeds without it (the
 * Unconfined container shows the probe can tell).
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv, rklOk } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";

const ready = requires("root", "conmon", "ip", "bundles", "youki");
const env = ready ? await makeEnv("yseccache", 44) : undefined;
const { test } = censusTests(ready, () => env!);
const cacheDir = () => `${env!.runRoot}/runtime/youki/.seccomp-cache`;
const PROBE = "grep Seccomp: /proc/self/status; unshare -U true 2>/dev/null; echo userns=$?";

/** The one cache file, with its inode, mode and owner. */
function cacheFile(): { path: string; ino: number; mode: number; uid: number } {
  const files = [...Deno.readDirSync(cacheDir())].filter((e) => e.name.endsWith(".bpf"));
  assert.equal(files.length, 1, `cache files: ${files.map((f) => f.name).join(", ")}`);
  const path = `${cacheDir()}/${files[0].name}`;
  const st = Deno.lstatSync(path);
  return { path, ino: st.ino!, mode: st.mode! & 0o7777, uid: st.uid! };
}

/** Runs the probe in a new container and removes it; its output. */
async function probe(name: string, extra = ""): Promise<string> {
  const file = `${env!.dir}/${name}.yaml`;
  await Deno.writeTextFile(
    file,
    `name: ${name}\nimage: ${REPO}/bundles/busybox\ncommand: [sleep, "60"]\n${extra}`,
  );
  await rklOk(env!, ["--runtime", "youki", "container", "run", "--network", "none", file]);
  try {
    return await rklOk(env!, ["container", "exec", name, "--", "sh", "-c", PROBE]);
  } finally {
    await rklOk(env!, ["container", "rm", "-f", name]);
  }
}

function assertConfined(out: string, when: string): void {
  assert.match(out, /Seccomp:\s+2\n/, `${when}: ${out}`);
  assert.match(out, /userns=1\n/, `${when}: a user namespace was made under the filter: ${out}`);
}

test("a compiled filter is cached, reused, and compiled again when its file is not trusted", async () => {
  // Without the filter the probe succeeds: what it tells apart is the filter.
  const open = await probe("open", "securityContext: {seccompProfile: {type: Unconfined}}\n");
  assert.match(open, /Seccomp:\s+0\n/);
  assert.match(open, /userns=0\n/, `the probe cannot tell: ${open}`);

  assertConfined(await probe("first"), "first container (compiled)");
  const dirMode = Deno.lstatSync(cacheDir()).mode! & 0o7777;
  assert.equal(dirMode, 0o700, `cache dir mode ${dirMode.toString(8)}`);
  const first = cacheFile();
  assert.equal(first.mode, 0o600);
  assert.equal(first.uid, 0);

  assertConfined(await probe("second"), "second container (from the cache)");
  assert.equal(cacheFile().ino, first.ino, "a good cache file was rewritten instead of used");

  // Writable by others: not trusted, compiled again and replaced by root's 0600 file.
  Deno.chmodSync(first.path, 0o666);
  assertConfined(await probe("writable"), "after chmod 666");
  const rewritten = cacheFile();
  assert.notEqual(rewritten.ino, first.ino, "a world-writable cache file was used");
  assert.equal(rewritten.mode, 0o600);

  // Another owner: the same.
  Deno.chownSync(rewritten.path, 65534, 65534);
  assertConfined(await probe("owner"), "after chown nobody");
  const owned = cacheFile();
  assert.notEqual(owned.ino, rewritten.ino, "a cache file owned by another user was used");
  assert.equal(owned.uid, 0);

  // Damaged: the program's last instruction flipped to "allow" (SECCOMP_RET_ALLOW) keeps
  // the length and the format; the checksum refuses it.
  const bytes = Deno.readFileSync(owned.path);
  bytes.set([0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x7f], bytes.length - 8);
  Deno.writeFileSync(owned.path, bytes);
  assertConfined(await probe("damaged"), "after damaging the program");
  const fixed = cacheFile();
  assert.notEqual(fixed.ino, owned.ino, "a damaged cache file was used");

  // An exec'd process loads the cached program too.
  assertConfined(await probe("exec"), "exec from the cache");
  assert.equal(cacheFile().ino, fixed.ino);
});

test("a symlink in place of the cache dir is not followed", async () => {
  const elsewhere = `${env!.dir}/elsewhere`;
  await Deno.mkdir(elsewhere, { mode: 0o700 });
  await Deno.remove(cacheDir(), { recursive: true }).catch(() => {});
  Deno.symlinkSync(elsewhere, cacheDir());
  try {
    assertConfined(await probe("linked"), "with the cache dir a symlink");
    assert.deepEqual([...Deno.readDirSync(elsewhere)], [], "youki wrote through the symlink");
  } finally {
    await Deno.remove(cacheDir());
  }
});

cleanupAfterAll(env);
