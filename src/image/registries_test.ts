import assert from "node:assert/strict";
import { SpecError } from "../errors.ts";
import { endpointsFor, parseRegistries, readAuthFile } from "./registries.ts";
import { parseChallenge } from "./registry.ts";

Deno.test("parseRegistries() reads mirrors and configs; endpointsFor() puts mirrors first", async () => {
  const cfg = await parseRegistries(
    [
      "mirrors:",
      "  docker.io:",
      '    endpoint: ["http://127.0.0.1:5000/"]',
      "  registry.k8s.io:",
      '    endpoint: ["https://m.example"]',
      "    fallback: false",
      "configs:",
      "  reg.example:",
      "    insecure: true",
      "    auth: {username: u, password: p}",
    ].join("\n"),
    "/etc/rkl/registries.yaml",
  );
  assert.deepEqual(endpointsFor(cfg, "docker.io").map((e) => e.url), [
    "http://127.0.0.1:5000",
    "https://registry-1.docker.io",
  ]);
  assert.deepEqual(endpointsFor(cfg, "registry.k8s.io").map((e) => e.url), ["https://m.example"]);
  const own = endpointsFor(cfg, "reg.example")[0];
  assert.equal(own.httpFallback, true); // insecure: plain HTTP allowed
  assert.equal(endpointsFor(cfg, "quay.io")[0].httpFallback, false);
  assert.equal(endpointsFor(cfg, "localhost:5000")[0].httpFallback, true);
  assert.deepEqual(cfg.configs["reg.example"].auth, { username: "u", password: "p" });
});

Deno.test("parseRegistries() names the file and line of a bad entry", async () => {
  const bad = async (text: string, re: RegExp) => {
    const e = await (async () => {
      try {
        await parseRegistries(text, "r.yaml");
      } catch (e) {
        return e;
      }
    })();
    assert.ok(e instanceof SpecError, text);
    assert.match(e.message, re);
  };
  await bad(
    "mirrors:\n  docker.io:\n    endpoint: [ftp://x]\n",
    /^r\.yaml:3:\d+: .*must be http\(s\)/,
  );
  await bad("mirrors:\n  docker.io:\n    endpoints: []\n", /^r\.yaml:3:5: unknown key "endpoints"/);
  await bad(
    "configs:\n  x:\n    insecure: yes please\n",
    /^r\.yaml:3:\d+: insecure must be true or false/,
  );
});

Deno.test("parseChallenge() reads Bearer and Basic challenges", () => {
  assert.deepEqual(
    parseChallenge(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
    ),
    {
      scheme: "bearer",
      params: {
        realm: "https://auth.docker.io/token",
        service: "registry.docker.io",
        scope: "repository:library/busybox:pull",
      },
    },
  );
  assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), {
    scheme: "basic",
    params: { realm: "Registry Realm" },
  });
});

Deno.test("readAuthFile() skips an auth that is not base64 of user:password", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rkl-auth-test-" });
  try {
    const file = `${dir}/auth.json`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        auths: {
          "good.example": { auth: btoa("me:pa:ss") },
          "https://url.example/v1/": { auth: btoa("u:p") },
          "notbase64.example": { auth: "%%%" },
          "nocolon.example": { auth: btoa("nocolon") },
          "plain.example": { username: "a", password: "b" },
        },
      }),
    );
    assert.deepEqual(readAuthFile(file), {
      "good.example": { username: "me", password: "pa:ss" },
      "url.example": { username: "u", password: "p" },
      "plain.example": { username: "a", password: "b" },
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
