/**
 * The client side of the recipe, on the same primitives as the server: a connection to an echo
 * server as a scoped resource, and the round trip a script or a test wants (send, half-close,
 * read to EOF).
 *
 * @since 0.1.0
 */
import { timeoutFail } from "#line/runtime"
import { runForEachBuffers } from "#line/stream"
import { type DurationInput, service } from "#line/types"
import { Data, Effect, Stream } from "effect"
import type { Scope } from "effect"
import type * as Connection from "./Connection.js"
import * as Checked from "./internal/checked.js"
import { connectWith } from "./internal/connect.js"
import * as Driven from "./internal/connection.js"
import * as errno from "./internal/errno.js"
import * as Options_ from "./internal/options.js"
import * as Socket from "./internal/socket.js"
import * as TcpState from "./internal/tcpState.js"
import { CurrentTransport } from "./internal/transport.js"

/**
 * Where to connect.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** An IPv4 address, or `localhost` (= 127.0.0.1). Default `127.0.0.1`. */
  readonly host?: string
  /** 1-65535; anything else fails with `InvalidOption` before any socket exists. */
  readonly port: number
  /** Give up connecting after this long. Default: the kernel's SYN retries decide. */
  readonly timeout?: DurationInput
  /** Read-ahead of the client's connection (see `Connection.Options`). */
  readonly highWaterMark?: number
  /**
   * Check every end of input with the kernel, so that a reset Node reports as a clean end fails
   * as a `Reset` (see {@link connect}). While the client still writes, that is one write of zero
   * bytes. Once it has half-closed, it is a read of `/proc/net/tcp` (Linux), whose cost grows with
   * every TCP socket on the machine, `TIME_WAIT` ones included. Turn it off for a client that
   * half-closes on connections by the thousand. Default true.
   */
  readonly verifyEnd?: boolean
}

/**
 * Connecting failed: refused, timed out, or an option is invalid (`InvalidOption`, before any
 * socket exists).
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectError extends Data.TaggedError("ConnectError")<{
  readonly reason: errno.ConnectReason | "InvalidOption"
  /** `HOST:PORT` connected to. */
  readonly address: string
  readonly code?: string
  /** The invalid option's name and value, and what a valid one looks like, for `InvalidOption`. */
  readonly option?: string
  readonly value?: unknown
  readonly expected?: string
  readonly cause?: unknown
}> {
  override get message(): string {
    switch (this.reason) {
      case "InvalidOption":
        return `invalid ${this.option}: ${Options_.showValue(this.value)} (expected ${this.expected})`
      case "Refused":
        return `${this.address} refused the connection (nothing listens there)`
      case "Timeout":
        return `connecting to ${this.address} timed out`
      case "Unknown":
        return `cannot connect to ${this.address}: ${this.code ?? String(this.cause)}`
    }
  }
}

/**
 * A client connection: the server's `Connection` interface plus an abortive close.
 *
 * @since 0.1.0
 * @category models
 */
export interface Client extends Connection.Connection {
  /** Closes with a reset (`SO_LINGER` 0): the peer sees `ECONNRESET`, not a FIN. */
  readonly reset: Effect.Effect<void>
}

/**
 * Connects (half-close allowed, as the echo needs). The scope's release closes the socket. The
 * end of what the server sends is checked with the kernel where it can be (Linux): Node's sockets
 * report a reset that arrives right behind the last bytes as a clean end, and this client fails
 * with a `Reset` instead, so that a cut-off answer never passes for a complete one.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (options: Options): Effect.Effect<Client, ConnectError, Scope.Scope> => {
  const host = options.host ?? "127.0.0.1"
  const address = `${host}:${options.port}`
  const valid = Checked.gen(function*() {
    const ipv4 = yield* Checked.value(Options_.ipv4("host", host))
    yield* Checked.value(Options_.integer("port", options.port, 1, 65535))
    return Checked.valid(ipv4)
  })
  if (valid._tag === "Invalid") {
    return Effect.fail(new ConnectError({ reason: "InvalidOption", address, ...valid.error }))
  }
  const validHost = valid.value
  const connecting = Effect.flatMap(
    service(CurrentTransport),
    (transport) => Effect.map(connectWith(transport, validHost, options.port), (socket) => ({ socket, transport }))
  ).pipe(
    Effect.mapError((error) => {
      const code = errno.errnoCode(error)
      return new ConnectError({
        reason: errno.connectReason(code),
        address,
        ...(code === undefined ? {} : { code }),
        cause: error
      })
    })
  )
  const timed = options.timeout === undefined
    ? connecting
    : connecting.pipe(timeoutFail({
      duration: options.timeout,
      onTimeout: () => new ConnectError({ reason: "Timeout", address })
    }))
  return Effect.flatMap(timed, ({ socket, transport }) => {
    // Every end of input is checked with the kernel: a reset right behind the last bytes, which
    // libuv reports as a clean end, fails as a Reset instead of passing for a complete answer.
    const ends = options.verifyEnd === false ? undefined : TcpState.ends(socket)
    return Effect.map(
      Effect.acquireRelease(
        Effect.sync(() => {
          const connection = Driven.drive(
            socket,
            options.highWaterMark === undefined ? {} : { highWaterMark: options.highWaterMark },
            undefined,
            undefined,
            ends === undefined ? undefined : { ends, transport }
          )
          // The peer's name is read now, while the socket has it: a server that resets the
          // connection later is still named by its address in every error.
          void connection.peer
          return connection
        }),
        (connection) => connection.close("close")
      ),
      (connection): Client =>
        Driven.delegate({
          get peer() {
            return connection.peer
          },
          read: connection.read,
          get stream() {
            return connection.stream
          },
          write: (data) => connection.write(data),
          run: (f, options) => connection.run(f, options),
          writeAll: (data) => connection.writeAll(data),
          end: connection.end,
          echo: connection.echo,
          draining: connection.draining,
          stats: connection.stats,
          reset: Effect.sync(() => Socket.close(socket, "reset"))
        }, connection)
    )
  })
}

/**
 * Sends `data` (concurrently with reading, so a large payload cannot deadlock against the echo),
 * half-closes, and returns everything received until the peer's EOF.
 *
 * @since 0.1.0
 * @category utils
 */
export const exchange = <E, R>(
  connection: Connection.Connection,
  data: Stream.Stream<Uint8Array, E, R>
): Effect.Effect<Uint8Array, E | Connection.ConnectionError, R> =>
  Effect.zipWith(
    Effect.andThen(runForEachBuffers(data, connection.writeAll), connection.end),
    readAll(connection),
    (_, received) => received,
    { concurrent: true }
  )

/**
 * Reads until the peer's EOF and returns the bytes, concatenated.
 *
 * @since 0.1.0
 * @category utils
 */
export const readAll = (connection: Connection.Connection): Effect.Effect<Uint8Array, Connection.ConnectionError> =>
  Effect.map(
    Stream.runCollect(connection.stream),
    (chunks) => Buffer.concat(Array.from(chunks))
  )

/**
 * Connects, exchanges `payload`, and closes: the recipe's client in one call.
 *
 * @since 0.1.0
 * @category utils
 */
export const roundTrip = (
  options: Options,
  payload: ReadonlyArray<Uint8Array>
): Effect.Effect<Uint8Array, ConnectError | Connection.ConnectionError> =>
  Effect.scoped(Effect.flatMap(connect(options), (client) => exchange(client, Stream.fromIterable(payload))))

/**
 * This module as a namespace, the shape the root entry point gives it:
 * `import { Client } from "effect-tcp-echo/Client"`, as well as
 * `import * as Client from "effect-tcp-echo/Client"`.
 *
 * @since 0.1.0
 */
export * as Client from "./Client.js"
