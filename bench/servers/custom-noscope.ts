/**
 * A handler of a user's own with no scope: a stream echo, `Stream.runForEach(connection.stream,
 * connection.write)`. Prints `listening on HOST:PORT` first; SIGINT or SIGTERM shuts it down with a
 * 1 s deadline.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Stream } from "effect"
import type { Connection } from "../../src/index.js"
import { Listener, Server } from "../../src/index.js"

const streamEcho: Server.Handler<Connection.ConnectionError> = (connection) =>
  Stream.runForEach(connection.stream, connection.write)

Effect.gen(function*() {
  const server = yield* Server.make({ shutdownTimeout: "1 second" }, streamEcho)
  console.log(`listening on ${Listener.formatAddress(server.address)}`)
  return yield* Effect.never
}).pipe(Effect.scoped, NodeRuntime.runMain)
