/**
 * Effect 4: effect/rpc over TCP on this server: an `RpcServer` on effect/rpc's own socket
 * protocol (`RpcServer.layerProtocolSocketServer`), given `PlatformSocketServer.layer` where it
 * expects `effect/socket`'s `SocketServer`, and a real `RpcClient` (`RpcClient.layerProtocolSocket`
 * over `NodeSocket.layerNet`) calling it. Then a shutdown with a stalled client connected: one
 * that sent a request and then neither reads nor closes. The RpcServer ends its requests first
 * (its layer is released before the one under it); then the server tells every connection it is
 * draining, and each waiting pull ends with a close (1000): the RpcClient's connection ends with a
 * FIN both ways, the stalled one, which never sends its FIN, is closed at the shutdown deadline,
 * and shutdown returns. The Effect 3 version is examples/rpc-over-tcp.ts.
 *
 * Run on the Effect 4 line (effect and @effect/platform-node from test/effect4, `#line/*` from
 * src/effect4): node --conditions=effect4 --import tsx --import ./test/effect4/register.mjs
 * examples/rpc-over-tcp.effect4.ts   (exits 0 once the shutdown has returned)
 */
import { NodeRuntime, NodeSocket } from "@effect/platform-node"
import { Context, Effect, Exit, Layer, Metric, Schema, Scope } from "effect"
import * as Rpc from "effect/rpc/Rpc"
import * as RpcClient from "effect/rpc/RpcClient"
import * as RpcGroup from "effect/rpc/RpcGroup"
import * as RpcSerialization from "effect/rpc/RpcSerialization"
import * as RpcServer from "effect/rpc/RpcServer"
import * as SocketServer from "effect/socket/SocketServer"
import * as net from "node:net"
import { Metrics, PlatformSocketServer } from "../src/index.js"

class Api extends RpcGroup.make(
  Rpc.make("Shout", { payload: { text: Schema.String }, success: Schema.String }),
  Rpc.make("Wait", { payload: { seconds: Schema.Number } })
) {}

const handlers = Api.toLayer({
  Shout: ({ text }) => Effect.succeed(text.toUpperCase()),
  Wait: ({ seconds }) => Effect.sleep(`${seconds} seconds`)
})

// The RpcServer as any app would write it; only the SocketServer under it is this server's.
const serverLayer = RpcServer.layer(Api).pipe(
  Layer.provide(handlers),
  Layer.provide(RpcServer.layerProtocolSocketServer),
  Layer.provide(RpcSerialization.layerNdjson),
  Layer.provideMerge(PlatformSocketServer.layer({ port: 0, shutdownTimeout: "1 second" }))
)

const cutAtDeadline = Effect.map(
  Metric.value(Metric.withAttributes(Metrics.connectionErrors, { reason: "ShutdownDeadline" })),
  (state) => state.count
)

/** A peer that sends one request (ndjson, as RpcClient would) and then neither reads nor closes. */
const stalledClient = (port: number) =>
  Effect.callback<{ readonly ended: () => Promise<string> }>((resume) => {
    const socket = net.connect({ host: "127.0.0.1", port }, () => {
      socket.write(
        `${JSON.stringify({ _tag: "Request", id: "1", tag: "Wait", payload: { seconds: 3600 }, headers: [] })}\n`
      )
      socket.pause()
      resume(Effect.succeed({ ended }))
    })
    // How its connection ended, read once it reads again: a paused socket notices nothing.
    const ended = () =>
      new Promise<string>((done) => {
        socket.once("error", (error: NodeJS.ErrnoException) => done(error.code ?? error.message))
        socket.once("end", () => done("FIN"))
        socket.on("data", () => {})
        socket.resume()
      })
  })

const program = Effect.gen(function*() {
  const serverScope = yield* Scope.make()
  const context = yield* Layer.buildWithScope(serverLayer, serverScope)
  const address = Context.get(context, SocketServer.SocketServer).address
  const port = address._tag === "UnixPathAddress" ? 0 : address.port
  yield* Effect.log(`RpcServer on 127.0.0.1:${port}`)

  // A real RpcClient, on the platform's Node socket, in a scope of its own.
  const clientScope = yield* Scope.make()
  const protocol = yield* Layer.buildWithScope(
    RpcClient.layerProtocolSocket().pipe(
      Layer.provide(NodeSocket.layerNet({ host: "127.0.0.1", port })),
      Layer.provide(RpcSerialization.layerNdjson)
    ),
    clientScope
  )
  const client = yield* RpcClient.make(Api).pipe(Effect.provide(protocol), Scope.provide(clientScope))
  for (const text of ["hello", "over tcp"]) {
    yield* Effect.log(`Shout(${JSON.stringify(text)}) -> ${JSON.stringify(yield* client.Shout({ text }))}`)
  }

  const stalled = yield* stalledClient(port)
  // Both connections served before shutting down (bounded wait).
  for (let i = 0; i < 100 && (yield* Metric.value(Metrics.connectionsActive)).value < 2; i++) {
    yield* Effect.sleep("10 millis")
  }
  const before = yield* cutAtDeadline
  const started = Date.now()
  yield* Scope.close(serverScope, Exit.void)
  const seconds = (Date.now() - started) / 1000
  const cut = (yield* cutAtDeadline) - before
  yield* Effect.log(`shutdown returned after ${seconds.toFixed(1)} s (deadline 1 s)`)
  yield* Effect.log(`connections cut off at the deadline: ${cut}`)
  yield* Effect.log(
    `the stalled client, reading again, sees its connection end: ${yield* Effect.promise(stalled.ended)}`
  )
  yield* Scope.close(clientScope, Exit.void)
})

NodeRuntime.runMain(program)
