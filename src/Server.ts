/**
 * The server: a listener, and the lifecycle of every connection it accepts (admission, one fiber
 * per connection, completion, shutdown), all owned by the scope it is built in. Closing that scope
 * shuts it down gracefully: stop accepting, tell the handlers, let connections finish for up to
 * `shutdownTimeout`, then cut off what is left.
 *
 * @since 0.1.0
 */
import * as Layers from "#line/layer"
import { buffersArray, type DurationInput, matchRead, Service } from "#line/types"
import { Data, Duration, Effect } from "effect"
import type { Context, Layer, Scope } from "effect"
import * as Connection from "./Connection.js"
import * as Checked from "./internal/checked.js"
import * as Level from "./internal/level.js"
import * as Lifecycle from "./internal/lifecycle.js"
import * as Log from "./internal/log.js"
import * as Options_ from "./internal/options.js"
import * as Outcome from "./internal/outcome.js"
import * as Proxy from "./internal/proxy.js"
import * as Listener from "./Listener.js"

/**
 * Everything a server takes: where to listen, per-connection policy, limits and shutdown.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Omit<Listener.Options, "maxAccepted">, Connection.Options {
  /** Connections served at once. Beyond it, accepted connections wait, unread. Default 10,000. */
  readonly maxConnections?: number
  /**
   * Accepted connections allowed to wait for a slot. Beyond `maxConnections + maxPending` the
   * kernel's connection is closed at once, logged and counted as dropped. With `idleTimeout`, a
   * connection waits at most that long (nothing is read while it waits). Default 1,000.
   */
  readonly maxPending?: number
  /**
   * How long shutdown lets open connections finish (they are told at once: see
   * `Connection.draining`) before cutting them off: interrupting their handlers and closing their
   * sockets with a reset. Default 5 s.
   */
  readonly shutdownTimeout?: DurationInput
  /**
   * After shutdown begins, how long the server still accepts new connections before it stops,
   * while its readiness ({@link Server.ready}) already says no: the time a load balancer takes to
   * stop sending connections once its readiness probe fails (Kubernetes' preStop pattern). Then
   * the drain notice, and `shutdownTimeout`. Default 0.
   */
  readonly drainDelay?: DurationInput
  /**
   * Behind an L4 load balancer (HAProxy's `send-proxy` or `send-proxy-v2`, Envoy, a cloud NLB):
   * every connection starts with a PROXY protocol header (v1 or v2) naming the real client, which
   * is then the connection's `peer` in its log records, errors and `connections`. A connection from
   * any other source, or whose header does not come, or not whole, within `headerTimeout`, is
   * refused: reset, logged, and counted as dropped (`proxy_untrusted`, `proxy_malformed`,
   * `proxy_timeout`). A v2 `LOCAL` header (the proxy's own health check) keeps the socket's peer.
   */
  readonly proxyProtocol?: {
    /** Who may connect: IPv4 networks (`10.0.0.0/8`) or addresses. Default loopback (`127.0.0.0/8`). */
    readonly trustedProxies?: ReadonlyArray<string>
    /** How long the header may take to arrive. Default 5 s. */
    readonly headerTimeout?: DurationInput
  }
  /**
   * After the shutdown deadline, how long the finalizers of the handlers cut off may still run
   * before shutdown stops waiting for them (their sockets are closed by then; a finalizer that
   * never ends is logged as an error). So shutdown takes at most `shutdownTimeout +
   * cleanupTimeout`, whatever a handler does. Default 1 s.
   */
  readonly cleanupTimeout?: DurationInput
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
  shutdownTimeout: Duration.seconds(5),
  cleanupTimeout: Duration.seconds(1),
  drainDelay: Duration.zero,
  trustedProxies: ["127.0.0.0/8"],
  headerTimeout: Duration.seconds(5)
} as const

/**
 * Why a server could not be made. `InvalidOption` is raised before any socket exists, for any
 * option of {@link Options}, the listener's included.
 *
 * @since 0.1.0
 * @category errors
 */
export type ServerErrorReason = "InvalidOption"

/**
 * The server's options are invalid: which one, the value given, and what a valid one looks like.
 * (Listening itself can still fail, with a `Listener.ListenError`.)
 *
 * @since 0.1.0
 * @category errors
 */
export class ServerError extends Data.TaggedError("ServerError")<{
  readonly reason: ServerErrorReason
  /** `HOST:PORT` as requested. */
  readonly address: string
  readonly option: string
  readonly value: unknown
  readonly expected: string
}> {
  override get message(): string {
    return `invalid ${this.option}: ${Options_.showValue(this.value)} (expected ${this.expected})`
  }
}

/**
 * What a connection is served with. It may fail or die: the server logs and counts that for the
 * connection and goes on. When it returns, the server half-closes the connection (if the handler
 * did not) and closes it. It may use `Scope`: each connection has its own, closed when the
 * connection is done (or cut off).
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
 * Only a failure made of peer faults (and the connection's own errors) takes this path: if the
 * same failure also holds a defect or another error, the whole is reported as the handler's. The
 * reason must be a non-empty name other than the server's own (`Reset`, `HandlerError`, ...), or
 * the error counts as `HandlerError`. Keep the reasons few and fixed: each is a metric series.
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
export const PeerFault: typeof Outcome.PeerFault = Outcome.PeerFault

/**
 * An error that names the reason it is counted under, as the peer's doing (see {@link PeerFault}).
 *
 * @since 0.1.0
 * @category models
 */
export interface PeerFault extends Outcome.PeerFault {}

/**
 * Whether a handler's error is marked as the peer's doing.
 *
 * @since 0.1.0
 * @category guards
 */
export const isPeerFault: (u: unknown) => u is PeerFault = Outcome.isPeerFault

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
    Log.minimumLevel,
    (level) => Level.enabled("Debug", level) ? echoLogged(connection) : connection.echo
  )

/**
 * The echo as a loop over the connection's pull, logging every receive: what a handler that
 * transforms bytes looks like, and the debug path of {@link echo}.
 *
 * @since 0.1.0
 * @category handlers
 */
export const echoLogged: Handler<Connection.ConnectionError> = (connection) => {
  const loop: Effect.Effect<void, Connection.ConnectionError> = matchRead(connection.read, {
    onEnd: () => Effect.logDebug(`no data from ${connection.peer}: half-closed, echo complete`),
    onFailure: Effect.fail,
    onBuffers: (buffers) =>
      Effect.logDebug(`receive data from ${connection.peer}`).pipe(
        Effect.annotateLogs("bytes", buffersArray(buffers).reduce((n, b) => n + b.length, 0)),
        Effect.andThen(connection.writeAll(buffers)),
        Effect.andThen(loop)
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
  /**
   * Whether the server wants new connections: false while accepting is suspended and from the
   * moment shutdown begins (during `drainDelay` too). What a readiness probe reads.
   */
  readonly ready: Effect.Effect<boolean>
  /**
   * Stops accepting for now: the port closes (a new connection is refused), the connections
   * served and waiting go on. Idempotent.
   */
  readonly suspend: Effect.Effect<void>
  /** Accepts again on the same port after `suspend`; fails if the port was taken meanwhile. */
  readonly resume: Effect.Effect<void, Listener.ListenError>
  /**
   * Changes `maxConnections` while the server runs: raised, waiting connections are admitted at
   * once; lowered, connections served go on and newcomers wait (or are dropped beyond
   * `maxPending`). Fails with a `ServerError` for a value `make` would refuse.
   */
  readonly setMaxConnections: (maxConnections: number) => Effect.Effect<void, ServerError>
}

/**
 * The server as a service.
 *
 * @since 0.1.0
 * @category services
 */
export class EchoServer extends Service<EchoServer, Server>()("effect-tcp-echo/Server") {}

/**
 * Every option checked, with defaults applied, in one place: the server's own, the connection's,
 * and the listener's (which `Listener.make` checks again by the same rules).
 */
const validate = (options: Options): Checked.Checked<Lifecycle.Policy, ServerError> =>
  Checked.mapError(
    Checked.gen(function*() {
      yield* Checked.value(Listener.validate(options))
      const maxConnections = yield* Checked.value(Options_.integer(
        "maxConnections",
        options.maxConnections ?? defaults.maxConnections,
        1
      ))
      const maxPending = yield* Checked.value(
        Options_.integer("maxPending", options.maxPending ?? defaults.maxPending, 0)
      )
      // The listener holds one more than these (see make).
      if (maxConnections + maxPending > 2 ** 31 - 2) {
        return Checked.invalid({
          option: "maxConnections",
          value: maxConnections,
          expected: "maxConnections + maxPending below 2^31 - 1"
        })
      }
      const highWaterMark = yield* Checked.value(Options_.integer(
        "highWaterMark",
        options.highWaterMark ?? Connection.defaults.highWaterMark,
        1
      ))
      const idleTimeout = options.idleTimeout === undefined
        ? undefined
        : yield* Checked.value(Options_.duration("idleTimeout", options.idleTimeout, "positive"))
      const shutdownTimeout = options.shutdownTimeout === undefined
        ? defaults.shutdownTimeout
        // Stryker disable next-line StringLiteral: equivalent (the duration check tells "positive" from anything else)
        : yield* Checked.value(Options_.duration("shutdownTimeout", options.shutdownTimeout, "zero allowed"))
      const cleanupTimeout = options.cleanupTimeout === undefined
        ? defaults.cleanupTimeout
        // Stryker disable next-line StringLiteral: equivalent (the duration check tells "positive" from anything else)
        : yield* Checked.value(Options_.duration("cleanupTimeout", options.cleanupTimeout, "zero allowed"))
      const drainDelay = options.drainDelay === undefined
        ? defaults.drainDelay
        // Stryker disable next-line StringLiteral: equivalent (the duration check tells "positive" from anything else)
        : yield* Checked.value(Options_.duration("drainDelay", options.drainDelay, "zero allowed"))
      const proxy = options.proxyProtocol === undefined
        ? undefined
        : yield* Checked.value(proxyPolicy(options.proxyProtocol))
      return Checked.valid({
        maxConnections,
        maxPending,
        connection: idleTimeout === undefined ? { highWaterMark } : { highWaterMark, idleTimeout },
        maxWait: idleTimeout,
        drainDelay,
        shutdownTimeout,
        cleanupTimeout,
        proxy
      })
    }),
    (invalid) => new ServerError({ reason: "InvalidOption", address: Listener.requestedAddress(options), ...invalid })
  )

const proxyPolicy = (
  options: NonNullable<Options["proxyProtocol"]>
): Checked.Checked<Proxy.Policy, Options_.Invalid> =>
  Checked.gen(function*() {
    const networks = options.trustedProxies ?? defaults.trustedProxies
    if (!Array.isArray(networks)) {
      return Checked.invalid({
        option: "proxyProtocol.trustedProxies",
        value: networks,
        expected: "a list of IPv4 networks such as 10.0.0.0/8, or addresses"
      })
    }
    const trusted: Array<Proxy.Cidr> = []
    for (const network of networks) {
      const parsed = typeof network === "string" ? Proxy.cidr(network) : Checked.invalid("not a string")
      if (parsed._tag === "Invalid") {
        return Checked.invalid({
          option: "proxyProtocol.trustedProxies",
          value: network,
          expected: "an IPv4 network such as 10.0.0.0/8, or an address"
        })
      }
      trusted.push(parsed.value)
    }
    const timeout = options.headerTimeout === undefined
      ? defaults.headerTimeout
      : yield* Checked.value(Options_.duration("proxyProtocol.headerTimeout", options.headerTimeout, "positive"))
    return Checked.valid({ trusted, timeout })
  })

/**
 * Starts a server in the current scope: binds, listens and serves every connection with
 * `handler` (default {@link echo}) in a fiber of its own. The scope's release is the graceful
 * shutdown; it returns when every socket and fiber of the server is gone, or at the latest
 * `cleanupTimeout` after the shutdown deadline.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <E = never, R = never>(
  options: Options = {},
  handler: Handler<E, R> = echo as Handler<any, any>
): Effect.Effect<Server, ServerError | Listener.ListenError, Scope.Scope | Exclude<R, Scope.Scope>> =>
  makeWith(options, handler)

/**
 * {@link make}, with the services a user's handler gets beyond the server's own: `services` is
 * read as each connection's fiber starts, and its services are in that fiber's first context.
 *
 * @internal
 */
export const makeWith = <E = never, R = never>(
  options: Options,
  handler: Handler<E, R>,
  services?: () => Context.Context<never> | undefined
): Effect.Effect<Server, ServerError | Listener.ListenError, Scope.Scope | Exclude<R, Scope.Scope>> =>
  Effect.gen(function*() {
    const policy = yield* Checked.toEffect(validate(options))
    if (policy.proxy !== undefined) yield* Proxy.load
    // One more than the server holds: the server sees the newcomer that finds the queue full, and
    // may make room for it (a waiting peer that reset); the kernel's cap is only a backstop.
    const listener = yield* Listener.make({ ...options, maxAccepted: policy.maxConnections + policy.maxPending + 1 })
    // The default echo decides between its two paths by the log level: decided once here.
    const debug = Level.enabled("Debug", yield* Log.minimumLevel)
    const handle: Lifecycle.Handle<unknown, R> = (handler as Handler<any, any>) !== echo
      ? services === undefined ? { _tag: "User", run: handler } : { _tag: "User", run: handler, services }
      : debug
      ? { _tag: "BuiltIn", run: echoLogged }
      : { _tag: "Echo" }
    const live = yield* Lifecycle.serve(listener, policy, handle)
    return {
      address: listener.address,
      backlog: listener.backlog,
      connections: live.connections,
      pending: live.pending,
      ready: live.ready,
      suspend: live.suspend,
      resume: live.resume,
      setMaxConnections: (maxConnections) =>
        Effect.flatMap(
          Effect.mapError(
            Checked.toEffect(Checked.gen(function*() {
              const n = yield* Checked.value(Options_.integer("maxConnections", maxConnections, 1))
              return n + policy.maxPending > 2 ** 31 - 2
                ? Checked.invalid({
                  option: "maxConnections",
                  value: n,
                  expected: "maxConnections + maxPending below 2^31 - 1"
                })
                : Checked.valid(n)
            })),
            (invalid) =>
              new ServerError({
                reason: "InvalidOption",
                address: Listener.formatAddress(listener.address),
                ...invalid
              })
          ),
          (n) => live.setMaxConnections(n)
        )
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
): Layer.Layer<EchoServer, ServerError | Listener.ListenError, Exclude<R, Scope.Scope>> =>
  Layers.scoped(EchoServer, make(options, handler as Handler<E, R>))

/**
 * This module as a namespace, the shape the root entry point gives it:
 * `import { Server } from "effect-tcp-echo/Server"`, as well as
 * `import * as Server from "effect-tcp-echo/Server"`.
 *
 * @since 0.1.0
 */
export * as Server from "./Server.js"
