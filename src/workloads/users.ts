/** Names are resolved against the image's rootfs in src/image/users.ts; this path re-exports it. */
export * from "../image/users.ts";
