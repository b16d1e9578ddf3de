/**
 * `PlatformSocketServer` on Effect 4: this server as `effect/socket`'s `SocketServer`, and a
 * `Connection` as its pulled `Socket` (`socket.reader`'s `pull`, `socket.writer`); this is the
 * Effect 4 side (`#line/PlatformSocketServer`), re-exported whole by src/PlatformSocketServer.ts,
 * whose header documents the module. src/effect3/PlatformSocketServer.ts exports the same names
 * on @effect/platform 0.97.
 *
 * What differs from the Effect 3 side is the socket's shape, not the server's judgement:
 * - `pull` gives the buffers the connection read, in order, and reads ahead at most its
 *   `highWaterMark` of what nobody pulled: a consumer that stops pulling stops its peer.
 * - Every end of a pull is a `SocketError`, as `effect/socket` requires: the peer's FIN, the
 *   server's drain notice (between two pulls) and a close nobody asked for with a code are
 *   `SocketCloseError` 1000; a close the handler wrote is `SocketCloseError` with its code (the
 *   next pull after it fails so, as `effect/rpc` expects after writing 1009); closing the reader's
 *   scope fails a waiting pull with 1006, as Node's own socket does; the connection's errors are
 *   `SocketReadError`/`SocketWriteError` with the `ConnectionError` as cause.
 * - A handler that lets such a close through (its failure is a `SocketCloseError` of this
 *   module's making) ended normally, as one that caught it did.
 */
import { Context, Deferred, Effect, Layer, Scope, Stream } from "effect"
import type { Exit } from "effect"
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as NetAddress from "effect/net/NetAddress"
import * as Pull from "effect/Pull"
import * as Socket from "effect/socket/Socket"
import * as SocketServer from "effect/socket/SocketServer"
import * as Connection from "../Connection.js"
import * as Driven from "../internal/connection.js"
import { type Closed, raised, start } from "../internal/platformServer.js"
import type * as Listener from "../Listener.js"
import type * as Server from "../Server.js"

export { SocketClosed } from "../internal/platformServer.js"

// The connection's normal end of input (the peer's FIN, the drain notice): a close with 1000.
const normalEnd: Closed = { _tag: "Closed", code: 1000, reason: undefined }

const closeError = (closed: Closed): Socket.SocketError => {
  const error = new Socket.SocketError({
    reason: new Socket.SocketCloseError({ code: closed.code, closeReason: closed.reason })
  })
  return raised(error, closed)
}

const fromConnection = (side: "Read" | "Write", error: Connection.ConnectionError): Socket.SocketError => {
  // A socket closed without an error is the platform's clean close (1000); everything else is an
  // error of the side that met it, with the connection's error as its cause.
  const socketError = new Socket.SocketError({
    reason: error.code === "ECLOSED"
      ? new Socket.SocketCloseError({ code: 1000 })
      : side === "Read"
      ? new Socket.SocketReadError({ cause: error })
      : new Socket.SocketWriteError({ cause: error })
  })
  return raised(socketError, { _tag: "Connection", error })
}

// The reader's scope closed under a pull: that pull's end, not the connection's (a handler that
// fails with it pulled a reader it had released: its own failure, so no origin).
const released = (): Socket.SocketError =>
  new Socket.SocketError({ reason: new Socket.SocketCloseError({ code: 1006 }) })

const encoder = new TextEncoder()

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

// One acquisition of the reader: released when its scope closes.
interface Acquired {
  released: boolean
}

/**
 * A connection as the platform's socket. A pull takes a buffer from the connection's own `run`,
 * in the pulling fiber: no fiber, race or queue per pull.
 */
class PlatformSocket implements Socket.Socket {
  readonly [Socket.TypeId]: typeof Socket.TypeId = Socket.TypeId
  // The close its handler asked for, if it did (the server judges that too).
  closed: Closed | undefined = undefined
  // The connection's own object, when it is one of this package's: a waiting pull can then be
  // woken, between two buffers, by a close written from another fiber or the reader's release.
  private readonly driven: Driven.Driven | undefined
  // Wakes the pulls of a connection made elsewhere (see `foreignReader`) at a close.
  private readonly wakeForeign: Array<() => void> = []
  private written: Socket.Writer | undefined = undefined

  constructor(readonly connection: Connection.Connection) {
    this.driven = Driven.of(connection)
  }

  get reader(): Effect.Effect<Socket.Reader, Socket.SocketError, Scope.Scope> {
    const driven = this.driven
    return driven === undefined ? this.foreignReader() : this.drivenReader(driven)
  }

  private drivenReader(driven: Driven.Driven): Effect.Effect<Socket.Reader, never, Scope.Scope> {
    return Effect.suspend(() => {
      const acquired: Acquired = { released: false }
      const pull = Effect.suspend(() => {
        let taken: Uint8Array | undefined
        const ran = driven.run((data) => {
          taken = data
        }, {
          untilDrain: true,
          until: () => taken !== undefined || acquired.released || this.closed !== undefined
        })
        return Effect.flatMap(
          Effect.mapError(ran, (error) => fromConnection("Read", error)),
          (): Effect.Effect<NonEmptyReadonlyArray<Uint8Array>, Socket.SocketError> =>
            taken !== undefined ? Effect.succeed([taken]) : Effect.fail(this.ended(acquired))
        )
      })
      return Effect.as(
        // The contract: closing the reader's scope fails a pull that is waiting.
        Effect.addFinalizer(() =>
          Effect.sync(() => {
            acquired.released = true
            driven.wakeRuns()
          })
        ),
        { pull, upgrade: Socket.SocketUpgradeError.unsupported }
      )
    })
  }

  /**
   * The reader of a connection made elsewhere (a decorated one): its stream, pulled; each pull
   * also returns at a close the handler wrote, at the reader's release and at the drain notice.
   * Those are raced, as nothing else of such a connection can wake its pull.
   */
  private foreignReader(): Effect.Effect<Socket.Reader, never, Scope.Scope> {
    return Effect.gen({ self: this }, function*() {
      const acquired: Acquired = { released: false }
      const stop = Deferred.makeUnsafe<never, Socket.SocketError>()
      const wake = () => Deferred.doneUnsafe(stop, Effect.fail(this.ended(acquired)))
      const scope = yield* Effect.scope
      this.wakeForeign.push(wake)
      yield* Scope.addFinalizer(
        scope,
        Effect.sync(() => {
          acquired.released = true
          wake()
          this.wakeForeign.splice(this.wakeForeign.indexOf(wake), 1)
        })
      )
      yield* Effect.forkIn(Effect.andThen(this.connection.draining, Effect.sync(wake)), scope)
      const pulled = yield* Stream.toPull(this.connection.stream)
      const pull: Effect.Effect<NonEmptyReadonlyArray<Uint8Array>, Socket.SocketError> = Effect.suspend(() => {
        if (Deferred.isDoneUnsafe(stop)) return Deferred.await(stop)
        return Effect.raceFirst(
          pulled.pipe(
            Pull.catchDone(() => Effect.fail(this.ended(acquired))),
            Effect.mapError((error) => isConnectionError(error) ? fromConnection("Read", error) : error)
          ),
          Deferred.await(stop)
        )
      })
      return { pull, upgrade: Socket.SocketUpgradeError.unsupported }
    })
  }

  // Why a pull ended without a buffer: a close the handler wrote, the reader's release, or the
  // connection's normal end (the peer's FIN, the drain notice).
  private ended(acquired: Acquired): Socket.SocketError {
    const closed = this.closed
    if (closed !== undefined) return closeError(closed)
    return acquired.released ? released() : closeError(normalEnd)
  }

  // Released: a half-close (FIN after everything written), as the platform's Node socket does.
  get writer(): Effect.Effect<Socket.Writer, never, Scope.Scope> {
    return Effect.acquireRelease(Effect.sync(() => this.writerOf()), () => Effect.ignore(this.connection.end))
  }

  private writerOf(): Socket.Writer {
    return this.written ??= {
      write: (chunk) => {
        if (Socket.isCloseEvent(chunk)) return this.close(chunk)
        return this.writeBytes(typeof chunk === "string" ? encoder.encode(chunk) : chunk)
      },
      // In order, each write waiting for 'drain' when it filled Node's buffer.
      writeAll: (chunks) =>
        Effect.forEach(chunks, (chunk) => this.writeBytes(typeof chunk === "string" ? encoder.encode(chunk) : chunk), {
          discard: true
        })
    }
  }

  private writeBytes(data: Uint8Array): Effect.Effect<void, Socket.SocketError> {
    return Effect.mapError(this.connection.write(data), (error) => fromConnection("Write", error))
  }

  private close(event: Socket.CloseEvent): Effect.Effect<void, Socket.SocketError> {
    return Effect.suspend(() => {
      this.closed ??= { _tag: "Closed", code: event.code, reason: event.reason }
      this.driven?.wakeRuns()
      for (const wake of this.wakeForeign) wake()
      // A FIN after everything written; the server closes the socket once the handler is done.
      return Effect.mapError(this.connection.end, (error) => fromConnection("Write", error))
    })
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
): Effect.Effect<SocketServer.SocketServer["Service"], Server.ServerError | Listener.ListenError, Scope.Scope> =>
  Effect.map(
    start(options, (connection) => {
      const socket = new PlatformSocket(connection)
      return { socket: socket as Socket.Socket, closed: () => socket.closed }
    }, (effect, services) => Effect.provideContext(effect, services)),
    ({ address, run }) =>
      SocketServer.SocketServer.of({
        address: NetAddress.inetAddressFromIpStringUnsafe(address.host, address.port),
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
  Layer.effect(SocketServer.SocketServer)(make(options))

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
  Layer.effectContext(Effect.gen(function*() {
    const serverScope = yield* Scope.make()
    const appScope = yield* Scope.make()
    // Both released together, registered before either holds anything.
    yield* Effect.addFinalizer((exit: Exit.Exit<unknown, unknown>) =>
      Effect.all([Scope.close(serverScope, exit), Scope.close(appScope, exit)], { concurrency: 2, discard: true })
    )
    const socketServer = yield* Scope.provide(make(options), serverScope)
    const built = yield* Layer.buildWithScope(app, appScope).pipe(
      Effect.provideService(SocketServer.SocketServer, socketServer)
    )
    return Context.add(built, SocketServer.SocketServer, socketServer)
  }))
