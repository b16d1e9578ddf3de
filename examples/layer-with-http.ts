/**
 * The echo server as one Layer of a larger application, beside an @effect/platform HTTP server
 * whose GET /health reads the echo server's address and live connections from the `EchoServer`
 * service. One Layer graph, one runtime, one graceful shutdown for both: when the program ends,
 * the layers are released and both servers close.
 *
 * Run: npx tsx examples/layer-with-http.ts
 */
import { HttpClient, HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpClient, NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { createServer } from "node:http"
import { Client, Listener, Server } from "../src/index.js"

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/health",
    Effect.gen(function*() {
      const echo = yield* Server.EchoServer
      const connections = yield* echo.connections
      return yield* HttpServerResponse.json({
        echo: Listener.formatAddress(echo.address),
        connections: connections.length
      })
    })
  )
)

// The HTTP app needs `EchoServer`; `provideMerge` also hands both servers to the program below.
const AppLive = HttpServer.serve(router).pipe(
  HttpServer.withLogAddress,
  Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 })),
  Layer.provideMerge(Server.layer({ host: "127.0.0.1", port: 0, shutdownTimeout: "1 second" }))
)

const program = Effect.gen(function*() {
  const echo = yield* Server.EchoServer
  const http = yield* HttpServer.HttpServer
  if (http.address._tag !== "TcpAddress") return yield* Effect.dieMessage("expected a TCP address")
  const healthUrl = `http://127.0.0.1:${http.address.port}/health`

  const reply = yield* Client.roundTrip({ port: echo.address.port }, [Buffer.from("hello, echo\n")])
  yield* Effect.log(`echo replied ${JSON.stringify(Buffer.from(reply).toString())}`)

  // Hold one echo connection open (and wait for its first echo, so the server surely serves it)
  // while asking /health: it reports that connection.
  const health = yield* Effect.scoped(
    Effect.gen(function*() {
      const held = yield* Client.connect({ port: echo.address.port })
      yield* held.write(Buffer.from("ping"))
      yield* held.read
      const response = yield* HttpClient.get(healthUrl)
      return yield* response.json
    })
  )
  yield* Effect.log(`GET /health -> ${JSON.stringify(health)}`)
})

program.pipe(
  Effect.provide(AppLive),
  Effect.provide(NodeHttpClient.layerUndici),
  NodeRuntime.runMain
)
