/**
 * @effect/platform code (`SocketServer.run`, `socket.run`, `socket.writer`), the same as
 * bench/servers/idiomatic.ts, on this server through `PlatformSocketServer`. Prints
 * `listening on HOST:PORT` first.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect } from "effect"
import { PlatformSocketServer } from "../../src/index.js"

Effect.gen(function*() {
  const server = yield* PlatformSocketServer.make({ port: 0, shutdownTimeout: "1 second" })
  const address = server.address
  if (address._tag === "TcpAddress") yield* Console.log(`listening on ${address.hostname}:${address.port}`)
  yield* server.run((socket) =>
    Effect.gen(function*() {
      const write = yield* socket.writer
      yield* socket.run((chunk) => write(chunk))
    }).pipe(Effect.scoped)
  )
}).pipe(Effect.scoped, NodeRuntime.runMain)
