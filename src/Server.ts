/**
 * The server: a listener, admission of accepted connections, and one child fiber per connection,
 * all owned by the scope it is built in. Closing that scope shuts it down gracefully: stop accepting, let
 * connections finish for up to `shutdownTimeout`, then destroy what is left.
 *
 * @since 0.1.0
 */
import {
  Cause,
  Chunk,
  Context,
  Duration,
  Effect,
  Exit,
  Fiber,
  FiberId,
  FiberRef,
  FiberRefs,
  HashMap,
  Layer,
  LogLevel,
  Option,
  Runtime
} from "effect"
import type { Scope } from "effect"
import type * as net from "node:net"
import * as Connection from "./Connection.js"
import { resetSocket } from "./internal/reset.js"
import * as Listener from "./Listener.js"
import * as Metrics from "./Metrics.js"

/**
 * Everything a server takes: where to listen, per-connection policy, limits and shutdown.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Listener.Options, Connection.Options {
  /** Connections served at once. Beyond it, accepted connections wait, unread. Default 10,000. */
  readonly maxConnections?: number
  /**
   * Accepted connections allowed to wait for a slot. Beyond `maxConnections + maxPending` the
   * kernel's connection is closed at once, logged and counted as dropped. With `idleTimeout`, a
   * connection waits at most that long (nothing is read while it waits). Default 1,000.
   */
  readonly maxPending?: number
  /** How long shutdown lets open connections finish before destroying them. Default 5 s. */
  readonly shutdownTimeout?: Duration.DurationInput
}

/**
 * The defaults of the options this module adds.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  maxConnections: 10_000,
  maxPending: 1_000,
  shutdownTimeout: Duration.seconds(5)
} as const

/**
 * What a connection is served with. It may fail or die: the server logs and counts that for the
 * connection and goes on. When it returns, the server half-closes the connection (if the handler
 * did not) and closes it.
 *
 * @since 0.1.0
 * @category models
 */
export type Handler<E = never, R = never> = (connection: Connection.Connection) => Effect.Effect<void, E, R>

/**
 * Marks a handler's error as the peer's doing (a protocol violation, say), not a bug: the server
 * logs it at info instead of error, counts it in `echo_connection_errors_total` under the reason
 * the error names instead of `HandlerError`, and closes the connection normally instead of
 * resetting it: what the handler wrote (an error line of the protocol, say) is flushed, then the
 * FIN. So tell the peer in-band before failing. A bug still resets the connection.
 *
 * Only a failure made of peer faults alone takes this path: if the same failure also holds a
 * defect or another error, the whole is reported as the handler's. The reason must be a non-empty
 * name other than the server's own (`Reset`, `HandlerError`, ...), or the error counts as
 * `HandlerError`. Keep the reasons few and fixed: each is a metric series.
 *
 * ```ts
 * class LineTooLong extends Data.TaggedError("LineTooLong")<{ readonly limit: number }> {
 *   readonly [Server.PeerFault] = "LineTooLong"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const PeerFault: unique symbol = Symbol.for("effect-tcp-echo/Server/PeerFault")

/**
 * An error that names the reason it is counted under, as the peer's doing (see {@link PeerFault}).
 *
 * @since 0.1.0
 * @category models
 */
export interface PeerFault {
  readonly [PeerFault]: string
}

/**
 * Whether a handler's error is marked as the peer's doing.
 *
 * @since 0.1.0
 * @category guards
 */
export const isPeerFault = (u: unknown): u is PeerFault => {
  const reason = typeof u === "object" && u !== null && PeerFault in u ? (u as PeerFault)[PeerFault] : undefined
  return typeof reason === "string" && reason !== "" && !ownReasons.has(reason)
}

/** The reasons the server counts connections under itself: a peer fault may not pass for one. */
const ownReasons: ReadonlySet<string> = new Set([
  "Reset",
  "BrokenPipe",
  "Timeout",
  "Unknown",
  "HandlerError",
  "Defect",
  "ShutdownDeadline"
])

/**
 * The recipe's loop: every byte back, in order, until the peer half-closes, then half-close.
 * Runs on the connection's own callbacks ({@link Connection.Connection.echo}), with the same
 * backpressure as `socket.pipe(socket)`; at debug level it pulls chunk by chunk instead, so
 * that each receive is logged as the recipe does.
 *
 * @since 0.1.0
 * @category handlers
 */
export const echo: Handler<Connection.ConnectionError> = (connection) =>
  Effect.flatMap(
    FiberRef.get(FiberRef.currentMinimumLogLevel),
    (level) => LogLevel.lessThanEqual(level, LogLevel.Debug) ? echoLogged(connection) : connection.echo
  )

const echoOwned = (connection: Connection.Owned) => connection.echoOwned

/**
 * The echo as a loop over the connection's pull, logging every receive: what a handler that
 * transforms bytes looks like, and the debug path of {@link echo}.
 *
 * @since 0.1.0
 * @category handlers
 */
export const echoLogged: Handler<Connection.ConnectionError> = (connection) => {
  const loop: Effect.Effect<void, Connection.ConnectionError> = Effect.matchEffect(connection.read, {
    onFailure: Option.match({
      onNone: () => Effect.logDebug(`no data from ${connection.peer}: half-closed, echo complete`),
      onSome: Effect.fail
    }),
    onSuccess: (chunk) =>
      Effect.logDebug(`receive data from ${connection.peer}`).pipe(
        Effect.annotateLogs("bytes", Chunk.reduce(chunk, 0, (n, b) => n + b.length)),
        Effect.zipRight(connection.writeAll(chunk)),
        Effect.zipRight(loop)
      )
  })
  return loop
}

/**
 * A live connection, as {@link Server.connections} reports it.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectionInfo extends Connection.Stats {
  readonly peer: string
}

/**
 * A running server.
 *
 * @since 0.1.0
 * @category models
 */
export interface Server {
  /** The bound address, with the real port when 0 was asked. */
  readonly address: Listener.Address
  /** The backlog passed to `listen()`. */
  readonly backlog: number
  /** Connections being served now, with their counters. */
  readonly connections: Effect.Effect<ReadonlyArray<ConnectionInfo>>
  /** Connections accepted and waiting for a slot. */
  readonly pending: Effect.Effect<number>
}

/**
 * The server as a service.
 *
 * @since 0.1.0
 * @category services
 */
export class EchoServer extends Context.Tag("effect-tcp-echo/Server")<EchoServer, Server>() {}

const positiveInteger = (
  options: Options,
  name: "maxConnections" | "maxPending" | "highWaterMark",
  fallback: number
): Effect.Effect<number, Listener.ListenError> => {
  const value = options[name] ?? fallback
  return Number.isSafeInteger(value) && value > (name === "maxPending" ? -1 : 0)
    ? Effect.succeed(value)
    : Effect.fail(invalid(options, name, value, name === "maxPending" ? "an integer >= 0" : "a positive integer"))
}

const duration = (
  options: Options,
  name: "shutdownTimeout" | "idleTimeout"
): Effect.Effect<Duration.Duration | undefined, Listener.ListenError> => {
  const value = options[name]
  if (value === undefined) return Effect.succeed(undefined)
  const decoded = Duration.decodeUnknown(value)
  return Option.isSome(decoded) && Duration.isFinite(decoded.value) &&
      (name === "shutdownTimeout" ? Duration.toMillis(decoded.value) >= 0 : Duration.toMillis(decoded.value) > 0)
    ? Effect.succeed(decoded.value)
    : Effect.fail(invalid(
      options,
      name,
      value,
      name === "shutdownTimeout" ? "a finite duration such as 500ms, 5s or 1m" : "a positive finite duration such as 30s"
    ))
}

const invalid = (options: Options, option: string, value: unknown, expected: string) =>
  new Listener.ListenError({
    reason: "InvalidOption",
    address: `${options.host ?? Listener.defaults.host}:${options.port ?? Listener.defaults.port}`,
    option,
    value,
    expected
  })

/** How long a connection whose handler is done keeps reading (and dropping) input, for its FIN. */
const lingerTimeout = Duration.seconds(2)

/**
 * Logs and counts how a connection ended badly; never fails. When the handler failed or died
 * (not the peer), `abort` resets the connection, so that a peer reading at the socket level sees
 * an error instead of a clean EOF that would pass for a complete answer (a libuv client may not:
 * docs/errors.md). When the handler failed with peer faults only, `close` ends it normally.
 */
const report = (
  cause: Cause.Cause<unknown>,
  labels: Metrics.Labels,
  abort: () => void,
  close: Effect.Effect<void>
): Effect.Effect<void> => {
  const failures = Cause.failures(cause)
  const first = Chunk.head(failures)
  if (Option.isSome(first) && Chunk.every(failures, isPeerFault) && Chunk.isEmpty(Cause.defects(cause))) {
    const error = first.value as PeerFault
    Metrics.connectionErrors.unsafeModify(1, labels.reason(error[PeerFault]))
    return Effect.zipRight(Effect.logInfo(error instanceof Error ? error.message : String(error)), close)
  }
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (error instanceof Connection.ConnectionError) {
      Metrics.connectionErrors.unsafeModify(1, labels.reason(error.reason))
      if (error.reason === "Reset") Metrics.connectionsReset.unsafeModify(1, labels.base)
      // The peer leaving or idling out is how connections end; only the unexplained is a warning.
      return error.reason === "Unknown"
        ? Effect.logWarning(error.message, error)
        : Effect.logInfo(error.message)
    }
    abort()
    Metrics.connectionErrors.unsafeModify(1, labels.reason("HandlerError"))
    return Effect.logError("handler failed", cause)
  }
  if (Cause.isInterruptedOnly(cause)) return Effect.void
  Metrics.connectionErrors.unsafeModify(1, labels.reason("Defect"))
  abort()
  return Effect.logError("handler died", cause)
}

/** The debug record of a connection that closed, with its counters. */
const closedRecord = (connection: Connection.Owned, started: number) =>
  Effect.flatMap(connection.stats, (stats) =>
    Effect.logDebug("connection closed").pipe(Effect.annotateLogs({
      bytesIn: stats.bytesIn,
      bytesOut: stats.bytesOut,
      durationMs: Math.round(performance.now() - started)
    })))

/**
 * Starts a server in the current scope: binds, listens and serves every connection with
 * `handler` (default {@link echo}) in a fiber of its own. The scope's release is the graceful
 * shutdown; it returns when every socket and fiber of the server is gone.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <E = never, R = never>(
  options: Options = {},
  handler: Handler<E, R> = echo as Handler<any, any>
): Effect.Effect<Server, Listener.ListenError, Scope.Scope | R> =>
  Effect.gen(function*() {
    const maxConnections = yield* positiveInteger(options, "maxConnections", defaults.maxConnections)
    const maxPending = yield* positiveInteger(options, "maxPending", defaults.maxPending)
    if (maxConnections + maxPending > 2 ** 31 - 1) {
      return yield* invalid(options, "maxConnections", maxConnections, "maxConnections + maxPending below 2^31")
    }
    const highWaterMark = yield* positiveInteger(options, "highWaterMark", Connection.defaults.highWaterMark)
    const shutdownTimeout = (yield* duration(options, "shutdownTimeout")) ?? defaults.shutdownTimeout
    const idleTimeout = yield* duration(options, "idleTimeout")
    const connectionOptions: Connection.Options = idleTimeout === undefined
      ? { highWaterMark }
      : { highWaterMark, idleTimeout }

    const listener = yield* Listener.make({ ...options, maxAccepted: maxConnections + maxPending })
    // The metric labels of the fiber that starts the server are on everything it counts.
    const labels = yield* Metrics.currentLabels
    const runFork = Runtime.runFork(yield* Effect.runtime<R>())
    // One record per connection with its counters, when the server starts at debug level.
    const debug = LogLevel.lessThanEqual(yield* FiberRef.get(FiberRef.currentMinimumLogLevel), LogLevel.Debug)
    // Every connection being served, with its fiber: the server's scope owns both. Their fibers
    // are forked from Node's callbacks and tracked here, like a FiberSet, with one observer each.
    const live = new Map<Connection.Owned, Fiber.RuntimeFiber<void>>()
    let onEmpty: (() => void) | undefined
    // Accepted, paused, waiting for a slot: no buffer is spent on them until one frees.
    const waiting: Array<net.Socket> = []
    let shuttingDown = false

    // The default echo decides between its two paths by the log level: decided once here. A
    // user's handler is called inside the fiber (suspended): one that throws instead of returning
    // an Effect is a defect of its connection, not an exception out of Node's callback.
    const handle = ((handler as Handler<any, any>) === echo
      ? (debug ? echoLogged : echoOwned)
      : (connection: Connection.Owned) => Effect.suspend(() => handler(connection))) as (
        connection: Connection.Owned
      ) => Effect.Effect<void, E, R>
    const serve = (connection: Connection.Owned, socket: net.Socket, started: number): Effect.Effect<void, never, R> => {
      const served = Effect.catchAllCause(
        // The answer is out; unread input would turn the close into a reset that cuts it short.
        Effect.zipRight(handle(connection), connection.complete(lingerTimeout)),
        (cause) =>
          report(cause, labels, () => resetSocket(socket), Effect.ignore(connection.complete(lingerTimeout)))
      )
      return debug ? Effect.zipRight(served, closedRecord(connection, started)) : served
    }
    // The peer's address is in every log record of its connection. Set in the fiber's initial
    // FiberRefs, not with Effect.annotateLogs: that costs a fifth of the churn rate (measured).
    const annotate = (connection: Connection.Owned) => (refs: FiberRefs.FiberRefs, id: FiberId.Runtime) =>
      FiberRefs.updateAs(refs, {
        fiberId: id,
        fiberRef: FiberRef.currentLogAnnotations,
        value: HashMap.set(FiberRefs.getOrDefault(refs, FiberRef.currentLogAnnotations), "peer", connection.peer as unknown)
      })
    // Connections still open at the shutdown deadline, by peer; reported once they are gone.
    const cutOff: Array<string> = []

    // Admission runs on Node's callbacks, outside any fiber: a connection costs one fiber and no
    // queue hop. The fiber's observer releases everything, however the fiber ends (even
    // interrupted before its first step), so a slot or a socket can never be lost.
    const start = (socket: net.Socket) => {
      const started = performance.now()
      const connection = Connection.wrap(socket, connectionOptions, labels.base)
      Metrics.connectionsActive.unsafeModify(1, labels.base)
      const fiber = runFork(serve(connection, socket, started), { updateRefs: annotate(connection) })
      live.set(connection, fiber)
      fiber.addObserver((exit) => {
        if (shuttingDown && Exit.isInterrupted(exit)) cutOff.push(connection.peer)
        socket.destroy()
        live.delete(connection)
        Metrics.connectionsActive.unsafeModify(-1, labels.base)
        Metrics.connectionDuration.unsafeUpdate((performance.now() - started) / 1000, labels.base)
        if (live.size === 0) onEmpty?.()
        admitWaiting()
      })
    }
    const admitWaiting = () => {
      while (!shuttingDown && live.size < maxConnections && waiting.length > 0) {
        const socket = waiting.shift()!
        // A peer that left while waiting needs no slot.
        if (socket.destroyed) continue
        if (idleMs !== undefined) {
          socket.setTimeout(0)
          socket.removeListener("timeout", dropIdleWaiting)
        }
        start(socket)
      }
    }
    // With an idle timeout, a connection waits at most that long for a slot, then is dropped.
    const idleMs = idleTimeout === undefined ? undefined : Duration.toMillis(idleTimeout)
    function dropIdleWaiting(this: net.Socket) {
      const i = waiting.indexOf(this)
      if (i >= 0) waiting.splice(i, 1)
      // Nothing is read while waiting, so this is the longest wait for a slot, not idleness.
      Metrics.connectionsDropped.unsafeModify(1, labels.reason("wait_timeout"))
      this.destroy()
    }
    const allClosed = Effect.async<void>((resume) => {
      if (live.size === 0) return resume(Effect.void)
      onEmpty = () => resume(Effect.void)
      return Effect.sync(() => {
        onEmpty = undefined
      })
    })

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        shuttingDown = true
        // Stop accepting: the port is free from here on, and connections still waiting are closed.
        yield* listener.close
        if (waiting.length > 0) Metrics.connectionsDropped.unsafeModify(waiting.length, labels.reason("shutdown"))
        for (const socket of waiting.splice(0)) socket.destroy()
        if (live.size > 0) {
          yield* Effect.logInfo(
            `shutting down: waiting up to ${Duration.format(shutdownTimeout)} for ${live.size} connection(s)`
          )
          // Finalizers are uninterruptible; the wait must not be, or the deadline could not end it.
          const drained = yield* Effect.interruptible(allClosed).pipe(
            Effect.timeoutOption(shutdownTimeout)
          )
          if (Option.isNone(drained)) {
            yield* Effect.logWarning(`shutdown deadline passed: closing ${live.size} connection(s)`)
          }
        }
        // A copy: interruptAll walks the list twice, to interrupt and then to await every fiber.
        yield* Fiber.interruptAll(Array.from(live.values()))
        if (cutOff.length > 0) {
          Metrics.connectionErrors.unsafeModify(cutOff.length, labels.reason("ShutdownDeadline"))
          // Name a few peers, not ten thousand: one log record must stay readable.
          const named = cutOff.slice(0, 10).join(", ") + (cutOff.length > 10 ? `, and ${cutOff.length - 10} more` : "")
          yield* Effect.logInfo(`closed ${cutOff.length} connection(s) at the shutdown deadline: ${named}`)
        }
      })
    )

    // Connections start only now that the shutdown above owns them: none can outlive the scope.
    yield* listener.handoff((socket) => {
      if (live.size < maxConnections) return start(socket)
      waiting.push(socket)
      if (idleMs !== undefined) {
        socket.setTimeout(idleMs)
        socket.once("timeout", dropIdleWaiting)
      }
    })

    return {
      address: listener.address,
      backlog: listener.backlog,
      connections: Effect.suspend(() =>
        Effect.forEach(Array.from(live.keys()), (connection) =>
          Effect.map(connection.stats, (stats): ConnectionInfo => ({ peer: connection.peer, ...stats })))
      ),
      pending: Effect.sync(() => waiting.length)
    } satisfies Server
  })

/**
 * The server as a layer: started when the layer is built, shut down gracefully when it is released.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <E = never, R = never>(
  options: Options = {},
  handler?: Handler<E, R>
): Layer.Layer<EchoServer, Listener.ListenError, R> =>
  Layer.scoped(EchoServer, make(options, handler as Handler<E, R>))

