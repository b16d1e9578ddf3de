/**
 * The @effect/platform echo that bench/servers/platform.ts and idiomatic.ts both serve, written
 * once so that the two rows differ only in the server under it: `SocketServer.run`, `socket.run`
 * and `socket.writer`, as the platform's docs write it.
 */
import type * as SocketServer from "@effect/platform/SocketServer"
import { Console, Effect } from "effect"

export const serve = (server: SocketServer.SocketServer["Type"]) =>
  Effect.gen(function*() {
    const address = server.address
    if (address._tag === "TcpAddress") yield* Console.log(`listening on ${address.hostname}:${address.port}`)
    return yield* server.run((socket) =>
      Effect.gen(function*() {
        const write = yield* socket.writer
        yield* socket.run((chunk) => write(chunk))
      }).pipe(Effect.scoped)
    )
  })
