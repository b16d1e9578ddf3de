/**
 * `PlatformSocketServer` on Effect 3: this server as @effect/platform 0.97's `SocketServer`, and a
 * `Connection` as its push-based `Socket` (`socket.run(handler)`); this is the Effect 3 side
 * (`#line/PlatformSocketServer`), re-exported whole by src/PlatformSocketServer.ts, whose header
 * documents the module. src/effect4/PlatformSocketServer.ts exports the same names on Effect 4's
 * `effect/socket`.
 */
import * as Socket from "@effect/platform/Socket"
import * as SocketServer from "@effect/platform/SocketServer"
import { Cause, Context, Effect, Layer, Scope } from "effect"
import type { Exit } from "effect"
import * as Connection from "../Connection.js"
import * as Driven from "../internal/connection.js"
import { type Closed, raised, start } from "../internal/platformServer.js"
import type * as Listener from "../Listener.js"
import type * as Server from "../Server.js"

export { SocketClosed } from "../internal/platformServer.js"

const fromConnection = (reason: "Read" | "Write", error: Connection.ConnectionError): Socket.SocketError => {
  // A socket closed without an error is the platform's clean close (1000); everything else is an
  // error of the side that met it, with the connection's error as its cause.
  const socketError = error.code === "ECLOSED"
    ? new Socket.SocketCloseError({ reason: "Close", code: 1000 })
    : new Socket.SocketGenericError({ reason, cause: error })
  return raised(socketError, { _tag: "Connection", error })
}

const encoder = new TextEncoder()

// A handler's effect that interrupts itself is dropped, as a fiber of the platform's FiberSet
// would be; any other failure ends the run.
const dropInterruption = <E>(cause: Cause.Cause<E>): Effect.Effect<void, E> =>
  Cause.isInterruptedOnly(cause) ? Effect.void : Effect.failCause(cause)

const isConnectionError = (error: unknown): error is Connection.ConnectionError =>
  error instanceof Connection.ConnectionError

/**
 * `connection` as a `Socket.Socket`, with the semantics this module's header describes. Its
 * writer's release half-closes the connection; closing it is the server's (or the connection's
 * owner's) business.
 *
 * @since 0.1.0
 * @category constructors
 */
export const toSocket = (connection: Connection.Connection): Socket.Socket => new PlatformSocket(connection)

/**
 * A connection as the platform's socket. Each chunk is handed to the handler from the
 * connection's own `run`, in the handler's fiber: no fiber, race or queue per chunk.
 */
class PlatformSocket implements Socket.Socket {
  readonly [Socket.TypeId]: Socket.TypeId = Socket.TypeId
  // The close its handler asked for, if it did (the server judges that too).
  closed: Closed | undefined = undefined
  // The connection's own object, when it is one of this package's: `run` can then also return,
  // between two chunks, at a close written from another fiber.
  private readonly driven: Driven.Driven | undefined
  private written:
    | ((chunk: Uint8Array | string | Socket.CloseEvent) => Effect.Effect<void, Socket.SocketError>)
    | undefined = undefined

  constructor(readonly connection: Connection.Connection) {
    this.driven = Driven.of(connection)
  }

  readonly run = <_, E = never, R = never>(
    handler: (data: Uint8Array) => Effect.Effect<_, E, R> | void,
    options?: { readonly onOpen?: Effect.Effect<void> | undefined }
  ): Effect.Effect<void, Socket.SocketError | E, R> => {
    const step = (data: Uint8Array) => {
      const result = handler(data)
      return Effect.isEffect(result) ? Effect.catchAllCause(result, dropInterruption) : undefined
    }
    const driven = this.driven
    // The peer's half-close ends the run, as the platform's 'end' does; so does the drain notice
    // (the handler ends at a safe point) and a close the handler wrote.
    const ran = driven === undefined
      ? this.connection.run((data) => this.closed === undefined ? step(data) : Effect.void, { untilDrain: true })
      : driven.run(step, { untilDrain: true, until: () => this.closed !== undefined })
    // The connection's own error is the platform's socket error; any other is the handler's own.
    const read = Effect.mapError(
      ran,
      (error): Socket.SocketError | E =>
        isConnectionError(error) && this.owns(error) ? fromConnection("Read", error) : error as E
    )
    const stopped = Effect.suspend(() => this.stopped())
    return options?.onOpen === undefined
      ? Effect.andThen(read, stopped)
      : Effect.andThen(options.onOpen, Effect.andThen(read, stopped))
  }

  // TCP carries bytes only: run and runRaw are the same.
  readonly runRaw = this.run

  // Released: a half-close (FIN after everything written), as the platform's Node socket does.
  get writer(): Effect.Effect<
    (chunk: Uint8Array | string | Socket.CloseEvent) => Effect.Effect<void, Socket.SocketError>,
    never,
    Scope.Scope
  > {
    return Effect.acquireRelease(Effect.succeed(this.write), () => Effect.ignore(this.connection.end))
  }

  private get write(): (chunk: Uint8Array | string | Socket.CloseEvent) => Effect.Effect<void, Socket.SocketError> {
    return this.written ??= (chunk) => {
      if (Socket.isCloseEvent(chunk)) return this.close(chunk)
      return Effect.mapError(
        this.connection.write(typeof chunk === "string" ? encoder.encode(chunk) : chunk),
        (error) => fromConnection("Write", error)
      )
    }
  }

  private close(event: Socket.CloseEvent): Effect.Effect<void, Socket.SocketError> {
    return Effect.suspend(() => {
      this.closed ??= { _tag: "Closed", code: event.code, reason: event.reason }
      this.driven?.wakeRuns()
      // A FIN after everything written; the server closes the socket once the handler is done.
      return Effect.mapError(this.connection.end, (error) => fromConnection("Write", error))
    })
  }

  private stopped(): Effect.Effect<void, Socket.SocketError> {
    const closed = this.closed
    if (closed === undefined) return Effect.void
    return Effect.fail(
      raised(new Socket.SocketCloseError({ reason: "Close", code: closed.code, closeReason: closed.reason }), closed)
    )
  }

  // A ConnectionError of this connection's read side: the platform's socket error, not the handler's.
  private owns(error: Connection.ConnectionError): boolean {
    const driven = this.driven
    return driven === undefined || Driven.raisedBy(error) === driven
  }
}

/**
 * Starts this server in the current scope (see `Server.make`) and returns it as the platform's
 * `SocketServer` service. Connections that arrive before `run` is called wait for a handler
 * (unread, in their slot); at shutdown, those still waiting are completed at once.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Server.Options = {}
): Effect.Effect<SocketServer.SocketServer["Type"], Server.ServerError | Listener.ListenError, Scope.Scope> =>
  Effect.map(
    start(options, (connection) => {
      const socket = new PlatformSocket(connection)
      return { socket: socket as Socket.Socket, closed: () => socket.closed }
    }, (effect, services) => Effect.provide(effect, services)),
    ({ address, run }) =>
      SocketServer.SocketServer.of({
        address: { _tag: "TcpAddress", hostname: address.host, port: address.port },
        run
      })
  )

/**
 * The platform's `SocketServer` service, backed by this server: started when the layer is built,
 * shut down gracefully (with the server's deadline) when it is released.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Server.Options = {}
): Layer.Layer<SocketServer.SocketServer, Server.ServerError | Listener.ListenError> =>
  Layer.scoped(SocketServer.SocketServer, make(options))

/**
 * Builds `app` on this server's `SocketServer` (started with `options`, and provided beside
 * `app`'s own services, for its address), and at release begins
 * the server's graceful shutdown at the same time as `app`'s own release, instead of after it:
 * whatever `app`'s release waits for on a connection (`RpcServer` waits for every response it is
 * writing, even to a peer that stopped reading) is then bounded by the shutdown deadline, where
 * the connections still open are cut off. `app` is built on its own: layers it shares with the
 * rest of the application are built again for it.
 *
 * ```ts
 * const RpcOverTcp = PlatformSocketServer.serve(
 *   RpcServer.layer(Api).pipe(Layer.provide(handlers), Layer.provide(RpcServer.layerProtocolSocketServer)),
 *   { port: 7007, shutdownTimeout: "5 seconds" }
 * ).pipe(Layer.provide(RpcSerialization.layerNdjson))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const serve = <A, E, R>(
  app: Layer.Layer<A, E, R>,
  options: Server.Options = {}
): Layer.Layer<
  A | SocketServer.SocketServer,
  E | Server.ServerError | Listener.ListenError,
  Exclude<R, SocketServer.SocketServer>
> =>
  Layer.scopedContext(Effect.gen(function*() {
    const serverScope = yield* Scope.make()
    const appScope = yield* Scope.make()
    // Both released together, registered before either holds anything.
    yield* Effect.addFinalizer((exit: Exit.Exit<unknown, unknown>) =>
      Effect.all([Scope.close(serverScope, exit), Scope.close(appScope, exit)], { concurrency: 2, discard: true })
    )
    const socketServer = yield* Scope.extend(make(options), serverScope)
    const built = yield* Layer.buildWithScope(app, appScope).pipe(
      Effect.provideService(SocketServer.SocketServer, socketServer)
    )
    return Context.add(built, SocketServer.SocketServer, socketServer)
  }))
