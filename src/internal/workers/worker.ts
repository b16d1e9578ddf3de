/**
 * The worker's side of the channel: it tells the primary that it listens (or why it could not),
 * answers its scrapes, applies its controls to its own server one at a time, and waits for the
 * shutdown the primary asks for.
 */
import { callback, deferredDone, runner, semaphoreUnsafe } from "#line/runtime"
import { Deferred, Effect, Exit } from "effect"
import type { Scope } from "effect"
import type * as Listener from "../../Listener.js"
import type * as Server from "../../Server.js"
import * as MetricsWire from "../metricsWire.js"
import * as Protocol from "./protocol.js"

/** The controls a worker's server may have. @internal */
export type Controllable = Partial<Pick<Server.Server, "suspend" | "resume" | "setMaxConnections">>

/** Sends to the primary and waits until it is written (a worker about to exit must not lose it). @internal */
export const send = (message: Protocol.ToPrimary): Effect.Effect<void> =>
  callback<void>((resume) => {
    // Stryker disable next-line ConditionalExpression: equivalent (calling an absent send throws, and the catch resumes); the check narrows the type
    if (process.send === undefined || !process.connected) return resume(Effect.void)
    try {
      process.send(message, undefined, {}, () => resume(Effect.void))
    } catch {
      resume(Effect.void)
    }
  })

/** `control` applied to this worker's server: fails with what to tell the primary. @internal */
export const apply = (server: Controllable, control: Protocol.Control): Effect.Effect<void, string> => {
  switch (control.action) {
    case "suspend":
      return server.suspend ?? Effect.fail("its server cannot suspend accepting")
    case "resume":
      return server.resume === undefined
        ? Effect.fail("its server cannot resume accepting")
        : Effect.mapError(server.resume, (error) => error.message)
    case "setMaxConnections":
      return server.setMaxConnections === undefined
        ? Effect.fail("its server cannot change maxConnections")
        : Effect.mapError(server.setMaxConnections(control.maxConnections), (error) => error.message)
  }
}

/**
 * Links `server` to the primary for as long as the scope lasts (see `Workers.attach`): returns an
 * effect that waits for the primary to ask for the shutdown, or to be gone.
 *
 * @internal
 */
export const attach = (
  server: Pick<Server.Server, "address"> & Controllable
): Effect.Effect<Effect.Effect<void>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const stop = yield* Deferred.make<void>()
    const runFork = (yield* runner()).fork
    // Applied one at a time, in the order they came.
    const serially = semaphoreUnsafe(1).withPermits(1)
    const onMessage = (message: unknown) => {
      if (!Protocol.isMessage(message)) return
      const tag = message[Protocol.tag]
      if (tag === "shutdown") deferredDone(stop, Exit.void)
      else if (tag === "metrics" && "request" in message) {
        runFork(send({
          [Protocol.tag]: "metrics",
          request: message.request,
          series: MetricsWire.snapshot()
        }))
      } else if (tag === "control" && "control" in message) {
        const request = message.request
        runFork(serially(
          Effect.matchEffect(apply(server, message.control), {
            onFailure: (error) => send({ [Protocol.tag]: "controlled", request, error }),
            onSuccess: () => send({ [Protocol.tag]: "controlled", request })
          })
        ))
      }
    }
    const onDisconnect = () => deferredDone(stop, Exit.void)
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        process.on("message", onMessage)
        process.on("disconnect", onDisconnect)
      }),
      () =>
        Effect.sync(() => {
          process.off("message", onMessage)
          process.off("disconnect", onDisconnect)
        })
    )
    yield* send({ [Protocol.tag]: "listening", address: server.address satisfies Listener.Address })
    return Deferred.await(stop)
  })
