/**
 * The CRI's gRPC plumbing: the two services of the vendored `runtime.v1`
 * api.proto (src/cri/proto/source.json says where it came from), served by
 * rkl's own HTTP/2 server (src/cri/h2/) on a unix socket. Messages are coded
 * by src/cri/codec.ts from a descriptor of the proto (no generated code, and
 * no protobufjs in the daemon): a request arrives as a plain object with
 * proto field names (snake_case), int64 as decimal strings and enums as their
 * names; a handler answers the same shape.
 */
import { Buffer } from "node:buffer";
import { serveCriOnDemand } from "./lazy.ts";
import { type GrpcMethod, serveGrpcStream, Status } from "./h2/grpc_server.ts";
import { type ServedConnection, serveH2Connection } from "./h2/serve.ts";
import { decode, encode, services } from "./codec.ts";
import { ConflictError, NotFoundError, RklError, SpecError, UsageError } from "../errors.ts";

export { Status };
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
  constructor(readonly code: Status, message: string) {
    super(message);
    this.name = "CriError";
  }
}

export const invalid = (msg: string) => new CriError(Status.INVALID_ARGUMENT, msg);
export const notFound = (msg: string) => new CriError(Status.NOT_FOUND, msg);
export const precondition = (msg: string) => new CriError(Status.FAILED_PRECONDITION, msg);

/** The gRPC status an error from rkl's core answers with. */
export function statusOf(e: unknown): { code: Status; details: string } {
  if (e instanceof CriError) return { code: e.code, details: e.message };
  const details = e instanceof Error ? e.message : String(e);
  if (e instanceof NotFoundError) return { code: Status.NOT_FOUND, details };
  if (e instanceof ConflictError) return { code: Status.ALREADY_EXISTS, details };
  if (e instanceof SpecError || e instanceof UsageError) {
    return { code: Status.INVALID_ARGUMENT, details };
  }
  if (e instanceof RklError) return { code: Status.UNKNOWN, details };
  return { code: Status.INTERNAL, details };
}

/**
 * One method as a gRPC client library takes it (grpc-js's MethodDefinition,
 * by shape: the tests and the bench drive the server with grpc-js's client).
 */
export interface MethodDefinition {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize(o: Message): Buffer;
  requestDeserialize(b: Uint8Array): Message;
  responseSerialize(o: Message): Buffer;
  responseDeserialize(b: Uint8Array): Message;
}

/** A service of the proto: path and codec per method. */
export function serviceDefinition(
  service: "RuntimeService" | "ImageService",
): Record<string, MethodDefinition> {
  const def: Record<string, MethodDefinition> = {};
  for (const [name, [req, res, responseStream]] of Object.entries(services()[service])) {
    def[name] = {
      path: `/runtime.v1.${service}/${name}`,
      requestStream: false,
      responseStream,
      requestSerialize: (o: Message) => Buffer.from(encode(req, o)),
      requestDeserialize: (b: Uint8Array) => decode(req, b),
      responseSerialize: (o: Message) =>
        (o as { [ENCODED]?: Buffer })[ENCODED] ?? Buffer.from(encode(res, o)),
      responseDeserialize: (b: Uint8Array) => decode(res, b),
    };
  }
  return def;
}

const ENCODED = Symbol("encoded");

/**
 * `message` frozen, with its encoding as the proto type `type` (e.g.
 * "ListContainersResponse") kept on it: answered again, it is sent as those
 * bytes without coding it anew. Callers that read it (the unit tests, the
 * handlers' own callers) see the message as it was.
 */
export function encodedAs(type: string, message: Message): Message {
  const bytes = Buffer.from(encode(`runtime.v1.${type}`, message));
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
  /** Largest message taken or sent, in bytes (the CRI's default, 16 MiB, when unset). */
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
 * close() sends each connection GOAWAY, ends the streaming calls, waits for
 * the unary calls under way (10 s at most) and closes the connections.
 */
export function criInjector(
  handlers: CriHandlers,
  options: Omit<ServeOptions, "socket">,
): { inject(connection: Deno.Conn): void; close(): Promise<void> } {
  const max = options.maxMessageBytes ?? 16 * 1024 * 1024;
  /** Aborted at close: ends the streaming calls, which would hold their connections open. */
  const stopping = new AbortController();
  const methods = criMethods(handlers, options, stopping.signal);
  const connections = new Set<ServedConnection>();
  const grpcOptions = {
    lookup: (path: string) => methods.get(path)?.method,
    maxMessageBytes: max,
    onDone: (path: string, code: Status, _details: string, seconds: number) => {
      const m = methods.get(path);
      if (m) options.onCall?.(m.name, Status[code], m.implemented ? seconds : 0);
    },
  };
  let closing = false;
  return {
    inject: (conn) => {
      if (closing) {
        try {
          conn.close();
        } catch { /* closed */ }
        return;
      }
      const served = serveH2Connection(conn, (s) => serveGrpcStream(s, grpcOptions), {
        log: options.log,
      });
      connections.add(served);
      served.closed.finally(() => connections.delete(served));
    },
    close: async () => {
      closing = true;
      stopping.abort();
      const all = [...connections];
      for (const c of all) c.shutdown();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all(all.map((c) => c.closed)),
        new Promise((r) => timer = setTimeout(r, 10_000)),
      ]);
      clearTimeout(timer);
      for (const c of all) c.destroy();
      await Promise.all(all.map((c) => c.closed));
      await handlers.close?.();
    },
  };
}

/** Every method of both services by path, each with its handler or UNIMPLEMENTED. */
function criMethods(
  handlers: CriHandlers,
  options: Omit<ServeOptions, "socket">,
  stopping: AbortSignal,
): Map<string, { name: string; implemented: boolean; method: GrpcMethod }> {
  const out = new Map<string, { name: string; implemented: boolean; method: GrpcMethod }>();
  const fail = (name: string, e: unknown) => {
    const st = statusOf(e);
    options.log?.(`cri: ${name}: ${Status[st.code]}: ${st.details}`);
    return Promise.reject(st);
  };
  for (
    const [service, table] of [
      ["RuntimeService", handlers.runtime],
      ["ImageService", handlers.image],
    ] as const
  ) {
    for (const [name, [req, res, responseStream]] of Object.entries(services()[service])) {
      const path = `/runtime.v1.${service}/${name}`;
      const decodeRequest = (b: Uint8Array): Message => {
        try {
          return decode(req, b);
        } catch (e) {
          throw new CriError(
            Status.INTERNAL,
            `cannot decode ${name}'s request: ${(e as Error).message}`,
          );
        }
      };
      const encodeAnswer = (o: Message): Uint8Array =>
        (o as { [ENCODED]?: Uint8Array })[ENCODED] ?? encode(res, o);
      const unimplemented = () =>
        Promise.reject({
          code: Status.UNIMPLEMENTED,
          details: `${name} is not implemented by rkl`,
        });
      if (responseStream) {
        const sh = handlers.streams?.[name];
        out.set(path, {
          name,
          implemented: !!sh,
          method: {
            streaming: true,
            handle: !sh ? unimplemented : async (b, ctx) => {
              try {
                const signal = AbortSignal.any([ctx.signal, stopping]);
                await sh(decodeRequest(b), (msg) => ctx.send(encodeAnswer(msg)), signal);
              } catch (e) {
                return fail(name, e);
              }
            },
          },
        });
        continue;
      }
      const h = table[name];
      out.set(path, {
        name,
        implemented: !!h,
        method: {
          streaming: false,
          handle: !h ? unimplemented : async (b, ctx) => {
            try {
              return encodeAnswer(
                await h(decodeRequest(b), { cancelled: () => ctx.signal.aborted }),
              );
            } catch (e) {
              return fail(name, e);
            }
          },
        },
      });
    }
  }
  return out;
}
