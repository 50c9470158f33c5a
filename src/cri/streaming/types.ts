/**
 * What the streaming server and its backend share: the requests' parameters,
 * the process's streams, the failure a client is told of, and the limits.
 */
import type { ChunkQueue, Duplex } from "./bytes.ts";
import type { TermSize } from "../../oci/conmon_ctl.ts";

export type { TermSize };

/** What a backend gets for one exec or attach. */
export interface ProcessIO {
  /** Bytes for the process's stdin, in order; null at the client's EOF. Absent: no stdin. */
  stdin?: ChunkQueue;
  stdout?: (b: Uint8Array) => Promise<void>;
  stderr?: (b: Uint8Array) => Promise<void>;
  tty: boolean;
  /** Terminal sizes the client sends; the latest is replayed to a late listener. */
  onResize(listener: (s: TermSize) => void): void;
  /** Settles when the client has gone away. */
  gone: Promise<void>;
}

export interface ExecParams {
  containerId: string;
  cmd: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

export type AttachParams = Omit<ExecParams, "cmd">;

export interface PortForwardParams {
  sandboxId: string;
  /** Ports the request allowed; empty allows any. */
  ports: number[];
}

/** A failure with the reason and message of the metav1.Status that reports it. */
export class StreamError extends Error {
  constructor(message: string, readonly reason = "InternalError", readonly exitCode?: number) {
    super(message);
  }
}

export interface StreamBackend {
  /** Runs `cmd`; resolves to its exit code. */
  exec(p: ExecParams, io: ProcessIO): Promise<number>;
  /** Joins the container's main process until the client's stdin ends or the process does. */
  attach(p: AttachParams, io: ProcessIO): Promise<void>;
  /** A connection to `port` inside the sandbox's network namespace. */
  dial(sandboxId: string, port: number): Promise<Duplex & { closeWrite(): Promise<void> }>;
}

/** How long a client has to open the streams it asked for. */
export const STREAM_CREATION_MS = 30_000;

/** Limits on connections (the defaults are what the daemon uses; tests shorten them). */
export interface StreamingLimits {
  /** How long a connection has to send its whole request head (ms). */
  headerTimeoutMs: number;
  /** Connections waiting for their request head at once; a new one closes the oldest. */
  maxUnauthenticated: number;
  /** An upgraded connection with no byte read or written for this long is closed (ms). */
  idleTimeoutMs: number;
}

export const STREAMING_LIMITS: StreamingLimits = {
  headerTimeoutMs: 10_000,
  maxUnauthenticated: 128,
  idleTimeoutMs: 4 * 3600_000,
};

export interface StreamingOptions extends Partial<StreamingLimits> {
  /** 127.0.0.1's port (0, the default: the kernel picks one). */
  port?: number;
  log?: (line: string) => void;
}

/** What the server did to connections that showed no valid request (for tests and logs). */
export interface StreamingStats {
  /** Connections accepted in all. */
  accepted: number;
  /** Connections waiting for their request head now. */
  waiting: number;
  /** Closed to make room for a newer one. */
  evicted: number;
  /** Closed at the header deadline. */
  headerTimeouts: number;
  /** Upgraded connections closed for being idle. */
  idleTimeouts: number;
}
