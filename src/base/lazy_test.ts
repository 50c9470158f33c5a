import assert from "node:assert/strict";
import { lazy } from "./lazy.ts";

Deno.test("lazy(): built once, on the first call, and kept", () => {
  let built = 0;
  const get = lazy(() => ({ n: ++built }));
  assert.equal(built, 0);
  const a = get();
  assert.equal(get(), a);
  assert.equal(built, 1);
});
