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
import { Context, Data, Deferred, Effect, Latch, Layer, Scope, Stream } from "effect"
import type { Cause, Exit } from "effect"
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as NetAddress from "effect/net/NetAddress"
import * as Pull from "effect/Pull"
import * as Socket from "effect/socket/Socket"
import * as SocketServer from "effect/socket/SocketServer"
import * as Connection from "../Connection.js"
import * as Driven from "../internal/connection.js"
import type * as Listener from "../Listener.js"
import * as Server from "../Server.js"

/**
 * A connection closed by its handler with a `Socket.CloseEvent` whose code is not 1000 (a normal
 * close): the protocol's answer to its peer (`effect/rpc` closes with 1009 on input it cannot
 * decode). Counted as the peer's doing, under the reason `SocketClosed`, and completed normally:
 * what was written before the close arrives, then the FIN.
 *
 * @since 0.1.0
 * @category errors
 */
export class SocketClosed extends Data.TaggedError("SocketClosed")<{
  /** `HOST:PORT` of the peer. */
  readonly peer: string
  readonly code: number
  readonly closeReason?: string | undefined
}> {
  readonly [Server.PeerFault] = "SocketClosed"
  override get message(): string {
    return `closed ${this.peer} with code ${this.code}${this.closeReason ? `: ${this.closeReason}` : ""}`
  }
}

// What each SocketError this module raised stands for: the connection's own error, or a close
// (asked for by the handler, or the connection's normal end). A handler's failure is judged by it
// (see `judge`).
type Origin =
  | { readonly _tag: "Connection"; readonly error: Connection.ConnectionError }
  | { readonly _tag: "Closed"; readonly code: number; readonly reason: string | undefined }
const origins = new WeakMap<object, Origin>()
type Closed = Extract<Origin, { _tag: "Closed" }>

// The connection's normal end of input (the peer's FIN, the drain notice): a close with 1000.
const normalEnd: Closed = { _tag: "Closed", code: 1000, reason: undefined }

const closeError = (closed: Closed): Socket.SocketError => {
  const error = new Socket.SocketError({
    reason: new Socket.SocketCloseError({ code: closed.code, closeReason: closed.reason })
  })
  origins.set(error, closed)
  return error
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
  origins.set(socketError, { _tag: "Connection", error })
  return socketError
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
 * How a platform handler ended, as the server judges it: a failure made only of this module's
 * socket errors is the connection's own end (or the close its handler asked for), whether the
 * handler kept it as a failure or turned it into a defect.
 */
const judge = (cause: Cause.Cause<unknown>, connection: Connection.Connection): Effect.Effect<void, unknown> => {
  // (A handler that swallowed such a failure, as effect/rpc does with every close, is judged by
  // the close it asked for: see `closedBy`.)
  let origin: Origin | undefined
  for (const reason of cause.reasons) {
    if (reason._tag === "Interrupt") continue
    const error = reason._tag === "Fail" ? reason.error : reason.defect
    const found = typeof error === "object" && error !== null ? origins.get(error) : undefined
    if (found === undefined) return Effect.failCause(cause)
    origin ??= found
  }
  if (origin === undefined) return Effect.failCause(cause)
  return origin._tag === "Connection" ? Effect.fail(origin.error) : closedBy(origin, connection)
}

// A close the handler asked for: normal with 1000, else the protocol's answer to its peer.
const closedBy = (closed: Closed | undefined, connection: Connection.Connection): Effect.Effect<void, SocketClosed> =>
  closed === undefined || closed.code === 1000
    ? Effect.void
    : Effect.fail(new SocketClosed({ peer: connection.peer, code: closed.code, closeReason: closed.reason }))

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
  Effect.gen(function*() {
    // The handler of the latest `run` still running, with the services of the fiber that called
    // it; connections wait for one while there is none.
    interface Running {
      readonly handler: (socket: Socket.Socket) => Effect.Effect<unknown, unknown>
      readonly services: Context.Context<never>
    }
    let current: Running | undefined
    const ready = yield* Latch.make(false)

    const handle = (connection: Connection.Connection, running: Running, provided: boolean) => {
      const socket = new PlatformSocket(connection)
      const handled = running.handler(socket)
      return Effect.matchCauseEffect(provided ? handled : Effect.provideContext(handled, running.services), {
        onFailure: (cause) => judge(cause, connection),
        onSuccess: () => closedBy(socket.closed, connection)
      })
    }
    // A connection's fiber starts with the services of the `run` running then (see below). One
    // that arrives while no `run` is running waits for one, or for the drain notice, and is given
    // that run's services when it comes.
    const serve: Server.Handler<unknown> = (connection) => {
      const running = current
      if (running !== undefined) return handle(connection, running, true)
      return Effect.flatMap(
        Effect.raceFirst(Effect.as(ready.await, true), Effect.as(connection.draining, false)),
        (handled) => handled && current !== undefined ? handle(connection, current, false) : Effect.void
      )
    }

    const server = yield* Server.makeWith(options, serve, () => current?.services)

    const run = <R, E, _>(
      handler: (socket: Socket.Socket) => Effect.Effect<_, E, R>
    ): Effect.Effect<never, SocketServer.SocketServerError, R> =>
      Effect.contextWith((services: Context.Context<R>) => {
        const previous = current
        current = {
          handler: handler as (socket: Socket.Socket) => Effect.Effect<unknown, unknown>,
          services: services as Context.Context<never>
        }
        ready.openUnsafe()
        return Effect.onExit(Effect.never, () =>
          Effect.sync(() => {
            current = previous
            if (current === undefined) ready.closeUnsafe()
          }))
      })

    return SocketServer.SocketServer.of({
      address: NetAddress.inetAddressFromIpStringUnsafe(server.address.host, server.address.port),
      run
    })
  })

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
