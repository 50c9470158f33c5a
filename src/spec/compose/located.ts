/** Where a compose path is written, across the files of a project. */
import { type SourceLocation, SpecError } from "../../errors.ts";
import { formatPath, locate, type PathSegment, type SourceDoc } from "../source.ts";

/** Where a compose path is, searching the files last to first (the one that set it last wins). */
export interface Located {
  srcs: SourceDoc[];
  at(path: readonly PathSegment[]): SourceLocation & { path: string };
  error(path: readonly PathSegment[], detail: string): SpecError;
}

export function located(srcs: SourceDoc[]): Located {
  const at = (path: readonly PathSegment[]) => {
    for (let i = srcs.length - 1; i >= 0; i--) {
      if (srcs[i].doc.hasIn(path as PathSegment[])) {
        return { file: srcs[i].file, ...locate(srcs[i], path), path: formatPath(path) };
      }
    }
    const last = srcs[srcs.length - 1];
    return { file: last.file, ...locate(last, path), path: formatPath(path) };
  };
  return { srcs, at, error: (path, detail) => new SpecError(at(path), detail) };
}
