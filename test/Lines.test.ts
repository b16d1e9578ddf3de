/**
 * What Effect's own socket server was seen to lose, held by this server with a user's handler:
 * run on both Effect lines (`npm test` and `npm run test:effect4`), written in the API both share.
 * Peers are plain `node:net` sockets on loopback, so nothing here depends on the line's own
 * socket module.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as net from "node:net"
import type { Connection } from "../src/index.js"
import { Server } from "../src/index.js"

const payload = (n: number) => new Uint8Array(n).map((_, i) => (i * 31 + 7) & 0xff)

/** Connects, sends `data`, half-closes, and reads to the end: what came back, and how it ended. */
const exchange = (port: number, data: Uint8Array) =>
  Effect.promise(() =>
    new Promise<{ readonly received: Buffer; readonly ended: "fin" | "reset" }>((resolve) => {
      const chunks: Array<Buffer> = []
      const socket = net.connect({ host: "127.0.0.1", port }, () => socket.end(data))
      socket.on("data", (chunk: Buffer) => chunks.push(chunk))
      socket.on("end", () => resolve({ received: Buffer.concat(chunks), ended: "fin" }))
      socket.on("error", () => resolve({ received: Buffer.concat(chunks), ended: "reset" }))
    })
  )

/** One asynchronous step (a timer turn) between each read and its write: a handler that awaits. */
const awaitingEcho: Server.Handler<Connection.ConnectionError> = (connection) =>
  connection.run((data) =>
    Effect.andThen(
      Effect.promise(() => new Promise((resolve) => setImmediate(resolve))),
      connection.write(data)
    )
  )

describe("the failures hidden by Effect's own socket server, on this server", () => {
  it.live(
    "a handler with an asynchronous step between read and write returns every byte, then FIN",
    () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const server = yield* Effect.provideService(Server.make({ port: 0 }, awaitingEcho), Scope.Scope, scope)
        const data = payload(1024 * 1024)
        const { ended, received } = yield* exchange(server.address.port, data)
        yield* Scope.close(scope, Exit.void)
        expect(ended).toBe("fin")
        expect(received.length).toBe(data.length)
        expect(received.equals(Buffer.from(data))).toBe(true)
      }),
    { timeout: 60_000 }
  )

  it.live(
    "a shutdown with peers that stopped reading ends at its deadline, and resets them",
    () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const server = yield* Effect.provideService(
          Server.make({ port: 0, shutdownTimeout: "200 millis", cleanupTimeout: "500 millis" }, awaitingEcho),
          Scope.Scope,
          scope
        )
        // Five peers that send more than the kernels' buffers hold and never read: the handler's
        // writes wait for a 'drain' that never comes.
        const peers = Array.from({ length: 5 }, () => {
          const socket = net.connect({ host: "127.0.0.1", port: server.address.port })
          socket.pause()
          const ended = new Promise<"fin" | "reset">((resolve) => {
            socket.on("end", () => resolve("fin"))
            socket.on("error", () => resolve("reset"))
            socket.on("close", () => resolve("reset"))
          })
          socket.write(payload(16 * 1024 * 1024))
          return { socket, ended }
        })
        // Every peer is being served and stalled: the server holds its bytes (its stats say so).
        for (let i = 0; i < 500; i++) {
          const live = yield* server.connections
          if (live.length === 5 && live.every((c) => c.bytesIn > 0)) break
          yield* Effect.sleep("20 millis")
        }
        yield* Scope.close(scope, Exit.void)
        const ends = yield* Effect.promise(() => Promise.all(peers.map((peer) => peer.ended)))
        for (const peer of peers) peer.socket.destroy()
        expect(ends).toEqual(["reset", "reset", "reset", "reset", "reset"])
      }),
    { timeout: 60_000 }
  )
})
