/**
 * A handler of a user's own in the cheapest shape this package offers: `connection.run` hands it
 * every buffer in order (here, written straight back), with a scoped cleanup that ends the
 * connection, as bench/servers/custom.ts has. Prints `listening on HOST:PORT` first; SIGINT or
 * SIGTERM shuts it down with a 1 s deadline.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import type { Scope } from "effect"
import type { Connection } from "../../src/index.js"
import { Listener, Server } from "../../src/index.js"

const runEcho: Server.Handler<Connection.ConnectionError, Scope.Scope> = (connection) =>
  Effect.addFinalizer(() => Effect.ignore(connection.end)).pipe(
    Effect.zipRight(connection.run(connection.write))
  )

Effect.gen(function*() {
  const server = yield* Server.make({ shutdownTimeout: "1 second" }, runEcho)
  console.log(`listening on ${Listener.formatAddress(server.address)}`)
  return yield* Effect.never
}).pipe(Effect.scoped, NodeRuntime.runMain)
