import assert from "node:assert/strict";
import { loadPods } from "../../spec/pod.ts";
import { type FsInfo, type HostFs, realFs } from "../../sys/fs.ts";
import { prepareHostPaths } from "./prepare.ts";

function podWith(path: string, type: string) {
  const [p] = loadPods(
    `apiVersion: v1\nkind: Pod\nmetadata: {name: h}\nspec:\n  volumes:\n    - {name: d, hostPath: {path: ${path}, type: ${type}}}\n  containers:\n    - {name: a, image: b, command: [sh], volumeMounts: [{name: d, mountPath: /d}]}\n`,
    "h.yaml",
  );
  return p.spec.containers[0];
}

/** A file system holding one path, of the given st_mode, and nothing else. */
function onePath(path: string, mode: number): HostFs {
  const info: FsInfo = {
    isFile: (mode & 0o170000) === 0o100000,
    isDirectory: (mode & 0o170000) === 0o040000,
    isSymlink: false,
    size: 0,
    mode,
    uid: 0,
    gid: 0,
    ino: 1,
    dev: 1,
    mtime: null,
  };
  return {
    ...realFs,
    stat: (p) => {
      if (p === path) return info;
      throw new Deno.errors.NotFound(p);
    },
  };
}

Deno.test("prepareHostPaths() tells sockets and devices apart by st_mode's type bits, through host.fs", () => {
  const cases: [number, string][] = [
    [0o140755, "Socket"],
    [0o020666, "CharDevice"],
    [0o060660, "BlockDevice"],
    [0o100644, "File"],
    [0o040755, "Directory"],
  ];
  for (const [mode, type] of cases) {
    const fs = onePath("/x", mode);
    assert.deepEqual(prepareHostPaths({ fs }, podWith("/x", type)), [], `${type} is ${type}`);
    for (const [, other] of cases.filter(([, t]) => t !== type)) {
      assert.throws(
        () => prepareHostPaths({ fs }, podWith("/x", other)),
        (e: Error) => e.message.includes(`is not what type ${other} asks for`),
        `${type} is not ${other}`,
      );
    }
  }
});

Deno.test("prepareHostPaths() on the real file system: /dev/null is a CharDevice and not a Socket", () => {
  const host = { fs: realFs };
  assert.deepEqual(prepareHostPaths(host, podWith("/dev/null", "CharDevice")), []);
  assert.throws(
    () => prepareHostPaths(host, podWith("/dev/null", "Socket")),
    /is not what type Socket asks for/,
  );
});
