/** Pure POSIX path helpers (spec/ does no I/O and has no @std/path). */

export function normalizePath(p: string): string {
  const abs = p.startsWith("/");
  const out: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!abs) out.push("..");
      continue;
    }
    out.push(seg);
  }
  const body = out.join("/");
  return abs ? `/${body}` : body || ".";
}

/** `base` joined with `p`, unless `p` is absolute. */
export function joinPath(base: string, p: string): string {
  return normalizePath(p.startsWith("/") ? p : `${base}/${p}`);
}

export function dirnameOf(p: string): string {
  const i = p.lastIndexOf("/");
  if (i < 0) return ".";
  if (i === 0) return "/";
  return p.slice(0, i);
}

/**
 * Whether an `image:` value names a bundle directory rather than an image:
 * a path (`/abs`, `./rel`, `../rel`, `.`, `~/dir`). Everything else is a reference.
 */
export function isBundlePath(image: string): boolean {
  return image.startsWith("/") || image.startsWith("./") || image.startsWith("../") ||
    image === "." || image === ".." || image.startsWith("~/");
}
