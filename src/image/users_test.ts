import assert from "node:assert/strict";
import { FieldError, locateFieldError, SpecError } from "../errors.ts";
import { parseGroup, parsePasswd, resolveNames } from "./users.ts";

const PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\nbroken:x:y:z\n";
const GROUP = "root:x:0:\nstaff:x:50:app\napp:x:1001:\n";

Deno.test("parsePasswd() and parseGroup() read the entries and skip malformed lines", () => {
  assert.deepEqual(parsePasswd(PASSWD), [
    { name: "root", uid: 0, gid: 0 },
    { name: "app", uid: 1000, gid: 1001 },
  ]);
  assert.deepEqual(parseGroup(GROUP).map((g) => g.name), ["root", "staff", "app"]);
});

Deno.test("resolveNames() follows docker: the user's primary group unless a group is named", () => {
  const files = { passwd: PASSWD, group: GROUP, where: "/b/rootfs" };
  assert.deepEqual(resolveNames({ user: "app" }, {}, files), { uid: 1000, gid: 1001 });
  assert.deepEqual(resolveNames({ user: "app", group: "staff" }, {}, files), {
    uid: 1000,
    gid: 50,
  });
  assert.deepEqual(resolveNames({ group: "staff" }, { uid: 7 }, files), { uid: 7, gid: 50 });
  assert.deepEqual(resolveNames({ user: "app" }, { gid: 9 }, files), { uid: 1000, gid: 9 });
  // A FieldError names the field path; the front end's locator places it (here at c.yaml:3:11).
  let err: unknown;
  try {
    resolveNames({ user: "ghost", path: ["securityContext", "user"] }, {}, files);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof FieldError);
  assert.deepEqual(err.path, ["securityContext", "user"]);
  const located = locateFieldError(err, {
    at: (path) => ({ file: "c.yaml", line: 3, column: 11, path: path.join(".") }),
  });
  assert.ok(located instanceof SpecError);
  assert.equal(
    located.message,
    'c.yaml:3:11: securityContext.user: user "ghost" is not in /b/rootfs/etc/passwd',
  );
  assert.throws(() => resolveNames({ group: "nope" }, {}, files), /group "nope" is not in/);
  assert.throws(() => resolveNames({ user: "app" }, {}, { where: "/b/rootfs" }), /not in/);
});

Deno.test("resolveNames(): a file that is there but was not read is named with the reason", () => {
  const files = {
    where: "/b/rootfs",
    group: "staff:x:50:\n",
    unreadable: { passwd: "not a regular file (a FIFO)" },
  };
  assert.throws(
    () => resolveNames({ user: "app" }, {}, files),
    (e: unknown) =>
      e instanceof FieldError &&
      e.message === 'user "app": /b/rootfs/etc/passwd cannot be read: not a regular file (a FIFO)',
  );
  assert.deepEqual(resolveNames({ group: "staff" }, { uid: 3 }, files), { uid: 3, gid: 50 });
});
