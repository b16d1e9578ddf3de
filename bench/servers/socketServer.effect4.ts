/**
 * Effect 4's own TCP server, as a control: @effect/platform-node's `NodeSocketServer` (effect/socket's
 * `SocketServer`) with the documented pull loop, `writer.writeAll` of each `socket.reader` pull.
 * Half-close allowed, as the Effect 3 idiomatic server (idiomatic.ts) and plain Node allow it, so
 * that every load's echo is complete. Effect 4 only: bench/run.ts bundles it against the Effect 4
 * workspace (test/effect4) and runs it on Node 22. Prints `listening on HOST:PORT` first.
 */
import { NodeRuntime, NodeSocketServer } from "@effect/platform-node"
import { Console, Effect } from "effect"

NodeSocketServer.make({ host: "127.0.0.1", port: 0, allowHalfOpen: true }).pipe(
  Effect.flatMap((server) =>
    Effect.gen(function*() {
      if (server.address._tag === "InetAddressV4") yield* Console.log(`listening on 127.0.0.1:${server.address.port}`)
      return yield* server.run((socket) =>
        Effect.gen(function*() {
          const { pull } = yield* socket.reader
          const writer = yield* socket.writer
          // Every end of a pull, the peer's FIN included, is a SocketError: it ends the loop, and
          // the scope's release half-closes the write side.
          while (true) yield* writer.writeAll(yield* pull)
        }).pipe(Effect.scoped, Effect.ignore)
      )
    })
  ),
  Effect.scoped,
  NodeRuntime.runMain
)
