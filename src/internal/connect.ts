/**
 * Connecting a client socket as a scoped resource: interruptible while connecting (the canceller
 * destroys the socket, so a timeout can end it), uninterruptible from the moment it connects
 * until its release is registered.
 */
import { afterTheEvent, callback } from "#line/runtime"
import { service } from "#line/types"
import { Effect } from "effect"
import type { Scope } from "effect"
import * as Transport from "./transport.js"

/** @internal */
export const connectSocket = (host: string, port: number): Effect.Effect<Transport.Socket, Error, Scope.Scope> =>
  Effect.flatMap(service(Transport.CurrentTransport), (transport) => connectWith(transport, host, port))

/** @internal */
export const connectWith = (
  transport: Transport.Transport,
  host: string,
  port: number
): Effect.Effect<Transport.Socket, Error, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) =>
    restore(callback<Transport.Socket, Error>((resume) => {
      const socket = transport.connect({ host, port, allowHalfOpen: true })
      const onError = (error: Error) => resume(Effect.fail(error))
      socket.once("error", onError)
      socket.once("connect", () => {
        socket.off("error", onError)
        socket.pause()
        resume(Effect.succeed(socket))
      })
      return Effect.sync(() => socket.destroy())
    })).pipe(
      Effect.tap((socket) => Effect.addFinalizer(() => Effect.sync(() => socket.destroy()))),
      // Connected goes on after the event that told it, on either line: the server's own
      // listener for that event (it accepts this socket) has run by then.
      afterTheEvent
    )
  )
