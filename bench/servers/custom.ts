/**
 * This project's server with a handler of a user's own instead of the built-in echo: a stream
 * echo whose cleanup ends the connection (an `end` that waits for the peer), so that it gets a
 * fiber, a scope, and a finalizer a stalled peer would hold forever without the hard deadline.
 * Prints `listening on HOST:PORT` first; SIGINT or SIGTERM shuts it down with a 1 s deadline.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Stream } from "effect"
import type { Scope } from "effect"
import type { Connection } from "../../src/index.js"
import { Listener, Server } from "../../src/index.js"

const withCleanup: Server.Handler<Connection.ConnectionError, Scope.Scope> = (connection) =>
  Effect.addFinalizer(() => Effect.ignore(connection.end)).pipe(
    Effect.zipRight(Stream.runForEach(connection.stream, connection.write))
  )

Effect.gen(function*() {
  const server = yield* Server.make({ shutdownTimeout: "1 second" }, withCleanup)
  console.log(`listening on ${Listener.formatAddress(server.address)}`)
  return yield* Effect.never
}).pipe(Effect.scoped, NodeRuntime.runMain)
