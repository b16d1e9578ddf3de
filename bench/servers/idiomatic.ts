/**
 * The idiomatic Effect echo: @effect/platform-node's `NodeSocketServer`, with `socket.run` and `writer`.
 * Prints `HOST:PORT` first.
 */
import { NodeRuntime, NodeSocketServer } from "@effect/platform-node"
import { Console, Effect } from "effect"

Effect.gen(function*() {
  const server = yield* NodeSocketServer.make({ host: "127.0.0.1", port: 0, allowHalfOpen: true })
  const address = server.address
  if (address._tag === "TcpAddress") yield* Console.log(`listening on ${address.hostname}:${address.port}`)
  yield* server.run((socket) =>
    Effect.gen(function*() {
      const write = yield* socket.writer
      yield* socket.run((chunk) => write(chunk))
    }).pipe(Effect.scoped)
  )
}).pipe(Effect.scoped, NodeRuntime.runMain)
