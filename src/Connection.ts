/**
 * One accepted TCP connection as a scoped resource: a backpressured read side (pull or `Stream`),
 * a write side that waits for `'drain'`, an explicit half-close, and a release that always
 * closes the socket. The data path is plain `node:net`; Effect is only at its edges. What to do
 * with a connection (deadlines, linger, metrics) is its owner's policy, not decided here.
 *
 * @since 0.1.0
 */
import type { Buffers, DurationInput, Read } from "#line/types"
import { Data, Effect } from "effect"
import type { Stream } from "effect"
import type { Scope } from "effect"
import * as Driven from "./internal/connection.js"
import type * as errno from "./internal/errno.js"
import type * as Listener from "./Listener.js"

/**
 * Per-connection policy.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Bytes read ahead of the consumer before the socket is paused. With Node's own readable buffer
   * and one kernel read (at most 64 KiB), it bounds what a connection holds on the read side.
   * Default 64 KiB.
   */
  readonly highWaterMark?: number
  /**
   * Close the connection when no byte moves in either direction for this long: with a FIN when
   * everything written was sent, with a reset when bytes are still unsent. Default: never.
   */
  readonly idleTimeout?: DurationInput
}

/**
 * The defaults of {@link Options}.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  highWaterMark: 64 * 1024
} as const

/**
 * Why a connection failed. `Reset` and `BrokenPipe` are the peer going away: expected ends.
 *
 * @since 0.1.0
 * @category errors
 */
export type ConnectionErrorReason = errno.ConnectionReason

/**
 * A connection failed: reset by the peer, written to after the peer left, idle too long, or an
 * error the kernel reported that has no reason of its own.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionError extends Data.TaggedError("ConnectionError")<{
  readonly reason: ConnectionErrorReason
  /** `HOST:PORT` of the peer. */
  readonly peer: string
  /** The errno code (`ECONNRESET`), when the kernel reported one. */
  readonly code?: string
  readonly syscall?: string
  readonly cause?: unknown
}> {
  override get message(): string {
    switch (this.reason) {
      case "Reset":
        return `${this.peer} reset the connection`
      case "BrokenPipe":
        return `${this.peer} is gone: write on a closed connection`
      case "Timeout":
        return `${this.peer} timed out${this.code === undefined ? " (idle)" : ` (${this.code})`}`
      case "Unknown":
        return `connection with ${this.peer} failed: ${this.code ?? String(this.cause)}`
    }
  }
}

/**
 * Counters of one connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly bytesIn: number
  readonly bytesOut: number
  /**
   * Bytes the process holds for this connection now: read ahead and not yet consumed, plus written
   * and not yet handed to the kernel. Bounded by backpressure whatever the peer does.
   */
  readonly buffered: number
}

/**
 * An accepted connection. Everything on it is safe to call after the peer left: it fails with a
 * {@link ConnectionError} instead of throwing or hanging.
 *
 * @since 0.1.0
 * @category models
 */
export interface Connection {
  /** `HOST:PORT` of the peer. */
  readonly peer: string
  /**
   * Pulls what has arrived, waiting when nothing has: every buffer read since the last pull, in
   * order. At the peer's half-close (end of input) it fails with `None` on Effect 3 and ends with
   * `Cause.Done` on Effect 4, each line's convention for a pull. The socket is read only up to
   * the high-water mark ahead of these pulls: a consumer that stops pulling stops the peer.
   */
  readonly read: Read<ConnectionError>
  /** {@link read} as a stream that ends at the peer's half-close. */
  readonly stream: Stream.Stream<Uint8Array, ConnectionError>
  /** Writes one buffer; when Node's buffer is full, waits for `'drain'` before returning. */
  readonly write: (data: Uint8Array) => Effect.Effect<void, ConnectionError>
  /** Writes buffers in order, waiting for `'drain'` after every write that fills Node's buffer. */
  readonly writeAll: (data: Buffers) => Effect.Effect<void, ConnectionError>
  /**
   * Half-closes: sends FIN after everything written (the recipe's `shutdown(SHUT_WR)`) and returns
   * once the kernel has it. Reading stays possible. Idempotent.
   */
  readonly end: Effect.Effect<void, ConnectionError>
  /**
   * The recipe's loop on Node's callbacks: every byte read is written straight back; reading pauses
   * whenever a write fills Node's buffer and resumes on `'drain'`; at the peer's half-close, the
   * connection half-closes after the last byte. Succeeds once the FIN is out. Bytes already pulled
   * with `read` are not replayed; bytes read ahead and not pulled are echoed first.
   */
  readonly echo: Effect.Effect<void, ConnectionError>
  /**
   * Calls `f` with every buffer read, in order, until the peer's half-close; the next buffer only
   * once the effect `f` returned for this one has completed (a plain function returning nothing
   * is called and goes on at once). So a slow `f` slows its peer down: nothing is read beyond the
   * high-water mark ahead of it. The cheapest way to serve a protocol: no stream machinery, and
   * a wait only when nothing is buffered. Succeeds at the peer's half-close (or, with
   * `untilDrain`, at the drain notice), fails with the connection's error or `f`'s.
   */
  readonly run: <E = never, R = never>(
    f: (data: Uint8Array) => Effect.Effect<unknown, E, R> | void,
    options?: RunOptions
  ) => Effect.Effect<void, E | ConnectionError, R>
  /**
   * Completes when the server that owns this connection begins to shut down: it has stopped
   * accepting, and will cut the connections still open at its deadline. The moment for a protocol
   * to say goodbye at a safe point and end, instead of being cut off. Never completes for a
   * connection no server owns (a client's, or one made with {@link make}).
   */
  readonly draining: Effect.Effect<void>
  /** The connection's counters now. */
  readonly stats: Effect.Effect<Stats>
}

/**
 * How {@link Connection.run} runs.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunOptions {
  /**
   * Also return at the drain notice ({@link Connection.draining}), between two buffers: the
   * handler then ends at a safe point, and its server completes the connection (our FIN after
   * everything written) instead of cutting it off at the shutdown deadline. Default false.
   */
  readonly untilDrain?: boolean
}

/**
 * Takes ownership of an accepted socket (as `Listener.accept` gives it: paused). The scope's
 * release closes the socket whatever state it is in (with a FIN, or a reset when bytes written
 * are still unsent), and returns once it is closed. At the idle timeout, the connection closes
 * itself the same way.
 *
 * A socket has one owner: making a second connection of the same socket is a defect (two readers
 * of one byte stream would each see a part of it, or all of it twice).
 *
 * A connection is an object whose members live on its class: to decorate one, delegate to it
 * (`{ read: ..., write: c.write, end: c.end, ... }`); spreading it (`{ ...c }`) copies none of
 * its methods.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  socket: Listener.Socket,
  options: Options = {}
): Effect.Effect<Connection, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.suspend(() =>
      Driven.isOwned(socket)
        ? Effect.die(new Error("Connection.make: this socket already belongs to a connection"))
        : Effect.sync(() => {
          const connection = Driven.drive(socket, options)
          // Named now, while the socket is open: a peer that resets later is still named in its errors.
          void connection.peer
          return connection
        })
    ),
    // Stryker disable next-line StringLiteral: equivalent (Socket.close tells "reset" from anything else)
    (driven) => driven.close("close")
  )

/**
 * This module as a namespace, the shape the root entry point gives it:
 * `import { Connection } from "effect-tcp-echo/Connection"`, as well as
 * `import * as Connection from "effect-tcp-echo/Connection"`.
 *
 * @since 0.1.0
 */
export * as Connection from "./Connection.js"
