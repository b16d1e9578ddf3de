/**
 * What `PlatformSocketServer` decides, written once for both Effect lines: which socket errors
 * stand for the connection's own end or a close its handler asked for, how a platform handler's
 * end is judged, and how connections wait for the `run` that serves them. Each line's module
 * (src/effect3, src/effect4) makes its platform's socket over a connection and its service.
 */
import * as Causes from "#line/cause"
import { callback } from "#line/runtime"
import { Data, Effect } from "effect"
import type { Cause, Context, Scope } from "effect"
import type * as Connection from "../Connection.js"
import type * as Listener from "../Listener.js"
import * as Server from "../Server.js"

/**
 * A connection closed by its handler with a close event whose code is not 1000 (a normal close):
 * the protocol's answer to its peer (the platform's rpc server closes with 1009 on input it
 * cannot decode). Counted as the peer's doing, under the reason `SocketClosed`, and completed
 * normally: what was written before the close arrives, then the FIN.
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

/**
 * What a socket error raised by the adapter stands for: the connection's own error, or a close
 * (asked for by the handler, or the connection's normal end).
 *
 * @internal
 */
export type Origin =
  | { readonly _tag: "Connection"; readonly error: Connection.ConnectionError }
  | { readonly _tag: "Closed"; readonly code: number; readonly reason: string | undefined }

/** @internal */
export type Closed = Extract<Origin, { _tag: "Closed" }>

const origins = new WeakMap<object, Origin>()

/**
 * Records what `error` (a socket error the adapter raised) stands for; returns it.
 *
 * @internal
 */
export const raised = <A extends object>(error: A, origin: Origin): A => {
  origins.set(error, origin)
  return error
}

/**
 * How a platform handler failed, as the server judges it: a failure made only of the adapter's
 * socket errors is the connection's own end (or the close its handler asked for), whether the
 * handler kept it as a failure or turned it into a defect. A handler that swallowed such a
 * failure (as the platform's rpc server does with every close) is judged by the close it asked
 * for: see {@link closedBy}.
 *
 * @internal
 */
export const judge = (cause: Cause.Cause<unknown>, connection: Connection.Connection): Effect.Effect<void, unknown> => {
  let origin: Origin | undefined
  for (const error of [...Causes.failures(cause), ...Causes.defects(cause)]) {
    const found = typeof error === "object" && error !== null ? origins.get(error) : undefined
    if (found === undefined) return Effect.failCause(cause)
    origin ??= found
  }
  if (origin === undefined) return Effect.failCause(cause)
  return origin._tag === "Connection" ? Effect.fail(origin.error) : closedBy(origin, connection)
}

/**
 * A close the handler asked for: normal with 1000, else the protocol's answer to its peer.
 *
 * @internal
 */
export const closedBy = (
  closed: Closed | undefined,
  connection: Connection.Connection
): Effect.Effect<void, SocketClosed> =>
  closed === undefined || closed.code === 1000
    ? Effect.void
    : Effect.fail(new SocketClosed({ peer: connection.peer, code: closed.code, closeReason: closed.reason }))

/**
 * The platform's socket over one connection, and the close its handler asked for once it is done.
 *
 * @internal
 */
export interface Adapted<S> {
  readonly socket: S
  readonly closed: () => Closed | undefined
}

/**
 * Starts the server in the current scope with connections served by the handler of the latest
 * `run` still running, each with the services of the fiber that called it. Connections that arrive
 * while no `run` is running wait for one (unread, in their slot), or for the drain notice, which
 * completes them at once.
 *
 * @internal
 */
export const start = <S>(
  options: Server.Options,
  adapt: (connection: Connection.Connection) => Adapted<S>,
  provide: <A, E>(effect: Effect.Effect<A, E, never>, services: Context.Context<never>) => Effect.Effect<A, E>
): Effect.Effect<
  {
    readonly address: Listener.Address
    readonly run: <R, E, _>(handler: (socket: S) => Effect.Effect<_, E, R>) => Effect.Effect<never, never, R>
  },
  Server.ServerError | Listener.ListenError,
  Scope.Scope
> =>
  Effect.gen(function*() {
    interface Running {
      readonly handler: (socket: S) => Effect.Effect<unknown, unknown>
      readonly services: Context.Context<never>
    }
    let current: Running | undefined
    // Connections waiting for a `run`, woken when one starts.
    const waiting = new Set<() => void>()
    const runStarted = callback<void>((resume) => {
      if (current !== undefined) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      waiting.add(wake)
      return Effect.sync(() => waiting.delete(wake))
    })

    const handle = (connection: Connection.Connection, running: Running, provided: boolean) => {
      const adapted = adapt(connection)
      const handled = running.handler(adapted.socket)
      return Effect.matchCauseEffect(provided ? handled : provide(handled, running.services), {
        onFailure: (cause) => judge(cause, connection),
        onSuccess: () => closedBy(adapted.closed(), connection)
      })
    }
    // A connection's fiber starts with the services of the `run` running then (see
    // `Server.makeWith`'s services); one that waited is given them when the `run` comes.
    const serve: Server.Handler<unknown> = (connection) => {
      const running = current
      if (running !== undefined) return handle(connection, running, true)
      return Effect.flatMap(
        Effect.raceFirst(Effect.as(runStarted, true), Effect.as(connection.draining, false)),
        (handled) => handled && current !== undefined ? handle(connection, current, false) : Effect.void
      )
    }

    const server = yield* Server.makeWith(options, serve, () => current?.services)

    const run = <R, E, _>(handler: (socket: S) => Effect.Effect<_, E, R>): Effect.Effect<never, never, R> =>
      Effect.flatMap(Effect.context<R>(), (services) => {
        const previous = current
        current = {
          handler: handler as (socket: S) => Effect.Effect<unknown, unknown>,
          services: services as Context.Context<never>
        }
        for (const wake of [...waiting]) wake()
        waiting.clear()
        return Effect.onExit(Effect.never, () =>
          Effect.sync(() => {
            current = previous
          }))
      })

    return { address: server.address, run }
  })
