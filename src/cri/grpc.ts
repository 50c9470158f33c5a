/**
 * The CRI's gRPC plumbing: the two services of the vendored `runtime.v1`
 * api.proto (src/cri/proto/source.json says where it came from), served by
 * grpc-js on a unix socket. Messages are coded by protobufjs from the parsed
 * proto, so no generated code is kept: a request arrives as a plain object
 * with proto field names (snake_case), int64 as decimal strings and enums as
 * their names; a handler answers the same shape.
 */
import * as grpc from "@grpc/grpc-js";
import { serveCriOnDemand } from "./lazy.ts";
import { connStream } from "./conn_stream.ts";
import protobuf from "protobufjs";
import protoText from "./proto/api.proto" with { type: "text" };
import { ConflictError, NotFoundError, RklError, SpecError, UsageError } from "../errors.ts";

// deno-lint-ignore no-explicit-any
export type Message = Record<string, any>;
export type Handler = (request: Message, call: { cancelled(): boolean }) => Promise<Message>;

/** A server-streaming call: `send` each answer; resolve to end the stream, until `signal` aborts. */
export type StreamHandler = (
  request: Message,
  send: (m: Message) => void,
  signal: AbortSignal,
) => Promise<void>;

/** An answer with a gRPC status other than OK. */
export class CriError extends Error {
  constructor(readonly code: grpc.status, message: string) {
    super(message);
    this.name = "CriError";
  }
}

export const Status = grpc.status;

export const invalid = (msg: string) => new CriError(grpc.status.INVALID_ARGUMENT, msg);
export const notFound = (msg: string) => new CriError(grpc.status.NOT_FOUND, msg);
export const precondition = (msg: string) => new CriError(grpc.status.FAILED_PRECONDITION, msg);

/** The gRPC status an error from rkl's core answers with. */
export function statusOf(e: unknown): { code: grpc.status; details: string } {
  if (e instanceof CriError) return { code: e.code, details: e.message };
  const details = e instanceof Error ? e.message : String(e);
  if (e instanceof NotFoundError) return { code: grpc.status.NOT_FOUND, details };
  if (e instanceof ConflictError) return { code: grpc.status.ALREADY_EXISTS, details };
  if (e instanceof SpecError || e instanceof UsageError) {
    return { code: grpc.status.INVALID_ARGUMENT, details };
  }
  if (e instanceof RklError) return { code: grpc.status.UNKNOWN, details };
  return { code: grpc.status.INTERNAL, details };
}

const DECODE: protobuf.IConversionOptions = {
  longs: String,
  enums: String,
  bytes: Uint8Array as unknown as protobuf.IConversionOptions["bytes"],
  defaults: true,
  arrays: true,
  objects: true,
};

let parsed: protobuf.Root | undefined;

/** The parsed proto (parsed once; about 20 ms). */
export function criRoot(): protobuf.Root {
  return parsed ??= protobuf.parse(protoText, { keepCase: true }).root;
}

/** A service of the proto as grpc-js wants it: path and codec per method. */
export function serviceDefinition(service: "RuntimeService" | "ImageService") {
  const root = criRoot();
  const svc = root.lookupService(`runtime.v1.${service}`);
  const def: Record<string, grpc.MethodDefinition<Message, Message>> = {};
  for (const [name, m] of Object.entries(svc.methods)) {
    const req = root.lookupType(m.requestType);
    const res = root.lookupType(m.responseType);
    def[name] = {
      path: `/runtime.v1.${service}/${name}`,
      requestStream: !!m.requestStream,
      responseStream: !!m.responseStream,
      requestSerialize: (o: Message) => Buffer.from(req.encode(req.fromObject(o)).finish()),
      requestDeserialize: (b: Uint8Array) => req.toObject(req.decode(b), DECODE),
      responseSerialize: (o: Message) =>
        (o as { [ENCODED]?: Buffer })[ENCODED] ??
          Buffer.from(res.encode(res.fromObject(o)).finish()),
      responseDeserialize: (b: Uint8Array) => res.toObject(res.decode(b), DECODE),
    };
  }
  return def as grpc.ServiceDefinition;
}

const ENCODED = Symbol("encoded");

/**
 * `message` frozen, with its encoding as the proto type `type` (e.g.
 * "ListContainersResponse") kept on it: answered again, it is sent as those
 * bytes without coding it anew. Callers that read it (the unit tests, the
 * handlers' own callers) see the message as it was.
 */
export function encodedAs(type: string, message: Message): Message {
  const t = criRoot().lookupType(`runtime.v1.${type}`);
  const bytes = Buffer.from(t.encode(t.fromObject(message)).finish());
  Object.defineProperty(message, ENCODED, { value: bytes });
  return Object.freeze(message);
}

export interface CriHandlers {
  runtime: Record<string, Handler>;
  image: Record<string, Handler>;
  /** Server-streaming methods, by name (GetContainerEvents). */
  streams?: Record<string, StreamHandler>;
  /** Releases what the handlers hold (the streaming server), after the gRPC server stopped. */
  close?: () => Promise<void>;
}

export interface ServeOptions {
  socket: string;
  /** One line per failed call (method and status). */
  log?: (line: string) => void;
  /** Largest request accepted, in bytes (grpc-js's default is 4 MiB). */
  maxMessageBytes?: number;
  /** Told of every call once answered: method, gRPC status name, seconds (metrics). */
  onCall?: (method: string, code: string, seconds: number) => void;
}

export interface CriServer {
  socket: string;
  close(): Promise<void>;
}

/**
 * Serves both services on `socket` (made 0600: the CRI is root's alone).
 * Every method the handlers lack answers UNIMPLEMENTED; a handler that throws
 * answers the status its error maps to, never bringing the server down.
 */
export async function serveCri(handlers: CriHandlers, options: ServeOptions): Promise<CriServer> {
  // The daemon's own path (src/cri/lazy.ts), with the server made up front.
  const served = criInjector(handlers, options);
  return await serveCriOnDemand(
    options.socket,
    () => Promise.resolve(served),
    options.log ?? (() => {}),
  );
}

/**
 * The CRI's gRPC server for connections accepted elsewhere (src/cri/lazy.ts
 * listens and loads this module on the first one): `inject` hands it one.
 */
export function criInjector(
  handlers: CriHandlers,
  options: Omit<ServeOptions, "socket">,
): { inject(connection: Deno.Conn): void; close(): Promise<void> } {
  const { server, close } = criServer(handlers, options);
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  return {
    inject: (c) => injector.injectConnection(connStream(c)),
    close: async () => {
      injector.destroy();
      await close();
    },
  };
}

function criServer(
  handlers: CriHandlers,
  options: Omit<ServeOptions, "socket">,
): { server: grpc.Server; close(): Promise<void> } {
  const max = options.maxMessageBytes ?? 16 * 1024 * 1024;
  /** Open server-streaming calls: ended first at close, or shutdown would wait on them. */
  const streaming = new Set<AbortController>();
  const server = new grpc.Server({
    "grpc.max_receive_message_length": max,
    "grpc.max_send_message_length": max,
    // Channelz's per-call counters and traces, read by no one here.
    "grpc.enable_channelz": 0,
  });
  for (
    const [service, table] of [["RuntimeService", handlers.runtime], [
      "ImageService",
      handlers.image,
    ]] as const
  ) {
    const def = serviceDefinition(service);
    const impl: grpc.UntypedServiceImplementation = {};
    for (const [name, m] of Object.entries(def)) {
      const h = table[name];
      if (m.responseStream) {
        const sh = handlers.streams?.[name];
        impl[name] = (call: grpc.ServerWritableStream<Message, Message>) => {
          if (!sh) {
            call.emit("error", {
              code: grpc.status.UNIMPLEMENTED,
              details: `${name} is not implemented by rkl`,
            });
            return;
          }
          const stop = new AbortController();
          const t0 = performance.now();
          const done = (code: grpc.status) =>
            options.onCall?.(name, grpc.status[code], (performance.now() - t0) / 1000);
          streaming.add(stop);
          stop.signal.addEventListener("abort", () => streaming.delete(stop), { once: true });
          call.on("cancelled", () => stop.abort());
          call.on("close", () => stop.abort());
          Promise.resolve().then(() => sh(call.request, (msg) => call.write(msg), stop.signal))
            .then(
              () => {
                done(grpc.status.OK);
                call.end();
              },
              (e) => {
                const st = statusOf(e);
                done(st.code);
                options.log?.(`cri: ${name}: ${grpc.status[st.code]}: ${st.details}`);
                call.emit("error", st);
              },
            );
        };
        continue;
      }
      impl[name] = (
        call: grpc.ServerUnaryCall<Message, Message>,
        cb: grpc.sendUnaryData<Message>,
      ) => {
        if (!h) {
          options.onCall?.(name, "UNIMPLEMENTED", 0);
          cb({ code: grpc.status.UNIMPLEMENTED, details: `${name} is not implemented by rkl` });
          return;
        }
        // Through a promise, so a handler that throws before its first await
        // answers its own status too.
        const t0 = performance.now();
        const done = (code: grpc.status) =>
          options.onCall?.(name, grpc.status[code], (performance.now() - t0) / 1000);
        Promise.resolve().then(() => h(call.request, { cancelled: () => call.cancelled })).then(
          (res) => {
            done(grpc.status.OK);
            cb(null, res);
          },
          (e) => {
            const st = statusOf(e);
            done(st.code);
            options.log?.(`cri: ${name}: ${grpc.status[st.code]}: ${st.details}`);
            cb(st);
          },
        );
      };
    }
    server.addService(def, impl);
  }
  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of [...streaming]) s.abort();
        server.tryShutdown(() => {
          void (handlers.close?.() ?? Promise.resolve()).finally(resolve);
        });
      }),
  };
}
