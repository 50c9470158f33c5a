/**
 * The file-system port: every file the core reads or writes under its state
 * roots, /proc and /sys goes through a `HostFs`, so a test can hand the core
 * an in-memory tree (tests/_helpers/fake_host.ts) instead of the real one.
 *
 * The calls mirror Deno's synchronous ones, including their errors: a fake
 * throws `Deno.errors.NotFound`, `AlreadyExists`, `NotADirectory`, … so that
 * code checking `instanceof` behaves the same on both.
 */

import { readTextBounded } from "./readfile.ts";

export interface FsEntry {
  name: string;
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
}

/** What the core reads of a stat: a subset of Deno.FileInfo both sides can fill. */
export interface FsInfo {
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
  size: number;
  /** Permission bits and type, as st_mode (null where unknown). */
  mode: number | null;
  uid: number | null;
  gid: number | null;
  /** Inode (null where unknown). */
  ino: number | null;
  /** Device (null where unknown). */
  dev: number | null;
  mtime: Date | null;
}

export interface WriteOptions {
  mode?: number;
  createNew?: boolean;
  append?: boolean;
  create?: boolean;
}

export interface HostFs {
  readTextFile(path: string): string;
  /**
   * The text of the regular file at `path` (symlinks followed), at most `max` bytes. Anything
   * else is a FileReadError, and a FIFO or a device is never opened for reading: a file a
   * container or an image controls (its /etc/passwd) can neither block nor flood the read.
   */
  readRegularText(path: string, max: number): string;
  readFile(path: string): Uint8Array;
  writeTextFile(path: string, data: string, options?: WriteOptions): void;
  writeFile(path: string, data: Uint8Array, options?: WriteOptions): void;
  mkdir(path: string, options?: { recursive?: boolean; mode?: number }): void;
  remove(path: string, options?: { recursive?: boolean }): void;
  stat(path: string): FsInfo;
  lstat(path: string): FsInfo;
  readDir(path: string): FsEntry[];
  readLink(path: string): string;
  symlink(target: string, path: string): void;
  link(existing: string, path: string): void;
  rename(from: string, to: string): void;
  copyFile(from: string, to: string): void;
  chmod(path: string, mode: number): void;
  chown(path: string, uid: number | null, gid: number | null): void;
  realPath(path: string): string;
}

function info(i: Deno.FileInfo): FsInfo {
  return {
    isFile: i.isFile,
    isDirectory: i.isDirectory,
    isSymlink: i.isSymlink,
    size: i.size,
    mode: i.mode,
    uid: i.uid,
    gid: i.gid,
    ino: i.ino,
    dev: i.dev,
    mtime: i.mtime,
  };
}

/** The real file system, through Deno's synchronous calls. */
export const realFs: HostFs = {
  readTextFile: (p) => Deno.readTextFileSync(p),
  readRegularText: (p, max) => readTextBounded(p, { max }),
  readFile: (p) => Deno.readFileSync(p),
  writeTextFile: (p, d, o) => Deno.writeTextFileSync(p, d, o),
  writeFile: (p, d, o) => Deno.writeFileSync(p, d, o),
  mkdir: (p, o) => Deno.mkdirSync(p, o),
  remove: (p, o) => Deno.removeSync(p, o),
  stat: (p) => info(Deno.statSync(p)),
  lstat: (p) => info(Deno.lstatSync(p)),
  readDir: (p) =>
    [...Deno.readDirSync(p)].map((e) => ({
      name: e.name,
      isFile: e.isFile,
      isDirectory: e.isDirectory,
      isSymlink: e.isSymlink,
    })),
  readLink: (p) => Deno.readLinkSync(p),
  symlink: (t, p) => Deno.symlinkSync(t, p),
  link: (e, p) => Deno.linkSync(e, p),
  rename: (f, t) => Deno.renameSync(f, t),
  copyFile: (f, t) => Deno.copyFileSync(f, t),
  chmod: (p, m) => Deno.chmodSync(p, m),
  chown: (p, u, g) => Deno.chownSync(p, u, g),
  realPath: (p) => Deno.realPathSync(p),
};
