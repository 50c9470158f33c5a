/** `rkl image`: pull, list, inspect, tag, remove, prune and import images; `rkl login`/`logout`. */
import type { Command } from "commander";
import type { Context } from "../app.ts";
import { ago, table, write } from "../format.ts";
import { UsageError } from "../../src/errors.ts";

function human(n: number): string {
  const u = ["B", "kB", "MB", "GB"];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < u.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${u[i]}`;
}

export function registerImage(program: Command, ctx: Context): void {
  const img = program.command("image").description(
    "OCI images: pull, list, inspect, tag, remove, prune, import",
  );

  img.command("pull").argument("<reference>").description(
    "pull an image (name[:tag] or name@sha256:…; busybox means docker.io/library/busybox:latest)",
  ).option("-q, --quiet", "no progress; print only the image id").option(
    "--platform <os/arch>",
    "platform to choose from a multi-arch image (default this host's)",
  ).action(async (ref: string, o: { quiet?: boolean; platform?: string }) => {
    const images = ctx.host().images!;
    const rec = await images.pull(ref, { quiet: o.quiet, platform: o.platform });
    write(`${rec.id}\n`);
  });

  img.command("ls").alias("list").description("list images").option(
    "-o, --output <format>",
    "table or json",
    "table",
  ).option("-a, --all", "also images without a tag").action(
    (o: { output: string; all?: boolean }) => {
      const { store } = ctx.host().images!;
      const rows: {
        repository: string;
        tag: string;
        id: string;
        digest: string;
        size: number;
        created?: string;
      }[] = [];
      for (const rec of store.listImages()) {
        const tags = store.tagsOf(rec.id);
        const digest = rec.repoDigests[0]?.split("@")[1] ?? rec.manifestDigest;
        if (tags.length === 0) {
          if (o.all || o.output === "json") {
            rows.push({
              repository: rec.repoDigests[0]?.split("@")[0] ?? "<none>",
              tag: "<none>",
              id: rec.id,
              digest,
              size: rec.size,
              created: rec.created,
            });
          }
          continue;
        }
        for (const t of tags) {
          const i = t.lastIndexOf(":");
          const td = store.tag(t)?.manifestDigest;
          const named = rec.repoDigests.find((d) => d.startsWith(`${t.slice(0, i)}@`))?.split(
            "@",
          )[1];
          rows.push({
            repository: t.slice(0, i),
            tag: t.slice(i + 1),
            id: rec.id,
            digest: named ?? td ?? digest,
            size: rec.size,
            created: rec.created,
          });
        }
      }
      if (o.output === "json") {
        write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      write(table(
        ["REPOSITORY", "TAG", "IMAGE ID", "DIGEST", "SIZE", "CREATED"],
        rows.map((
          r,
        ) => [
          r.repository,
          r.tag,
          r.id.slice(7, 19),
          r.digest.slice(0, 19),
          human(r.size),
          r.created ? ago(r.created) : "-",
        ]),
      ));
    },
  );

  img.command("inspect").argument("<images...>").description(
    "an image's record, config and tags as JSON",
  ).action(
    async (names: string[]) => {
      const { notFound } = await import("../../src/image/service.ts");
      const { store } = ctx.host().images!;
      const out = names.map((n) => {
        const rec = store.find(n);
        if (!rec) throw notFound(n);
        return {
          Id: rec.id,
          RepoTags: store.tagsOf(rec.id),
          RepoDigests: rec.repoDigests,
          Created: rec.created,
          Os: rec.os,
          Architecture: rec.architecture,
          Size: rec.size,
          Config: rec.config,
          ExposedPorts: Object.keys(rec.config.ExposedPorts ?? {}),
          Layers: rec.layers.map((l) => ({
            Digest: l.digest,
            DiffID: l.diffId,
            MediaType: l.mediaType,
            Size: l.size,
          })),
          ManifestDigest: rec.manifestDigest,
          PulledAt: rec.pulledAt,
        };
      });
      write(`${JSON.stringify(out, null, 2)}\n`);
    },
  );

  img.command("tag").argument("<source>").argument("<target>").description(
    "give an image another name",
  ).action(
    async (source: string, target: string) => {
      const { notFound } = await import("../../src/image/service.ts");
      const { parseReference, tagName } = await import("../../src/image/reference.ts");
      const images = ctx.host().images!;
      const { store } = images;
      const rec = store.find(source);
      if (!rec) throw notFound(source);
      let name: string | undefined;
      try {
        name = tagName(parseReference(target));
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      if (!name || target.includes("@")) {
        throw new UsageError(
          `target ${JSON.stringify(target)} must be a name with a tag, not a digest`,
        );
      }
      await store.withGcLock(
        false,
        () => Promise.resolve(store.setTag(name!, rec.id, rec.manifestDigest)),
      );
      images.note({ action: "tag", ref: rec.id, name });
      write(`${name}\n`);
    },
  );

  img.command("rm").alias("remove").argument("<images...>").description(
    "remove images (a tag only, while the image keeps other tags); refused while a container uses it",
  ).option("-f, --force", "remove even while containers use it (they keep running on their mounts)")
    .action(
      async (names: string[], o: { force?: boolean }) => {
        const { removeImages } = await import("../../src/image/manage.ts");
        for (const line of await removeImages(ctx.host(), names, o.force ?? false)) {
          write(`${line}\n`);
        }
      },
    );

  img.command("prune").description(
    "remove images no container uses and no tag names, then unreferenced blobs and layers",
  )
    .option("-a, --all", "also tagged images that no container uses").action(
      async (o: { all?: boolean }) => {
        const { pruneImages } = await import("../../src/image/manage.ts");
        const r = await pruneImages(ctx.host(), o.all ?? false);
        for (const id of r.images) write(`${id}\n`);
        write(`Total reclaimed space: ${human(r.bytes)} (${r.blobs} blobs, ${r.layers} layers)\n`);
      },
    );

  img.command("import").argument("<archive>").argument("[name]").description(
    "load a `docker save` or OCI-layout tarball (name: a tag for it, when the archive has none)",
  ).action(async (archive: string, name?: string) => {
    const { importArchive } = await import("../../src/image/import.ts");
    const host = ctx.host();
    const recs = await importArchive(host.images!.store, archive, name);
    for (const r of recs) {
      host.images!.note({ action: "import", ref: r.id, name: host.images!.store.tagsOf(r.id)[0] });
      write(`${r.id}\n`);
    }
  });

  program.command("login").argument("<registry>").description(
    "store credentials for a registry in the auth file ($REGISTRY_AUTH_FILE, default /etc/rkl/auth.json)",
  ).requiredOption("-u, --username <name>").option(
    "-p, --password <secret>",
    "(default: read from stdin)",
  )
    .option("--password-stdin", "read the password from stdin").action(
      async (
        registry: string,
        o: { username: string; password?: string; passwordStdin?: boolean },
      ) => {
        const { login } = await import("../../src/image/manage.ts");
        let password = o.password;
        if (password === undefined) {
          const { readStreamBounded } = await import("../../src/sys/readfile.ts");
          // A password, not a stream: `< /dev/zero` must not fill memory.
          const bytes = await readStreamBounded(Deno.stdin.readable, 64 * 1024);
          if (!bytes) {
            throw new UsageError("Cannot read the password: stdin holds more than 64 KiB");
          }
          password = new TextDecoder().decode(bytes).replace(/\r?\n$/, "");
        }
        if (!password) throw new UsageError("no password given");
        await login(ctx.host().images!, registry, { username: o.username, password });
        write("Login Succeeded!\n");
      },
    );
  program.command("logout").argument("<registry>").description(
    "remove a registry's credentials from the auth file",
  )
    .action(async (registry: string) => {
      const { authFilePath, writeAuthEntry } = await import("../../src/image/registries.ts");
      const had = writeAuthEntry(authFilePath(), registry, undefined);
      if (!had) throw new UsageError(`not logged in to ${registry}`);
      write(`Removed login credentials for ${registry}\n`);
    });
}
