/**
 * Effect 4 only (effect/rpc): effect/rpc's socket protocol on this server, through
 * PlatformSocketServer: a real RpcClient (`RpcClient.layerProtocolSocket` over
 * `NodeSocket.layerNet`) is answered, input the protocol cannot decode is the peer's fault
 * (counted, not a crash), and a shutdown with a stalled client ends at the server's deadline.
 *
 * The line-3 twin is test/Rpc.test.ts (@effect/rpc 0.76). This file imports Effect 4 modules, so
 * only the Effect 4 line's run finds it (`*.effect4.test.ts`).
 */
import { NodeSocket } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
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
  Rpc.make("Wait", { payload: { seconds: Schema.Number } }),
  Rpc.make("Download", { payload: { bytes: Schema.Number }, success: Schema.String })
) {}

const handlers = Api.toLayer({
  Shout: ({ text }) => Effect.succeed(text.toUpperCase()),
  Wait: ({ seconds }) => Effect.sleep(`${seconds} seconds`),
  Download: ({ bytes }) => Effect.succeed("x".repeat(bytes))
})

const errors = (reason: string) =>
  Effect.map(Metric.value(Metric.withAttributes(Metrics.connectionErrors, { reason })), (state) => state.count)
const reasons = ["ShutdownDeadline", "Reset", "Defect", "HandlerError", "SocketClosed"] as const
const counts = Effect.map(
  Effect.all(reasons.map(errors)),
  (values) =>
    Object.fromEntries(reasons.map((reason, i) => [reason, values[i]!])) as Record<typeof reasons[number], number>
)

const portOf = (context: Context.Context<SocketServer.SocketServer>): number => {
  const address = Context.get(context, SocketServer.SocketServer).address
  return address._tag === "UnixPathAddress" ? 0 : address.port
}

/** The RpcServer as an app writes it, on this server, in a scope the test closes. */
const startServer = Effect.gen(function*() {
  const scope = yield* Scope.make()
  const context = yield* Layer.buildWithScope(
    RpcServer.layer(Api).pipe(
      Layer.provide(handlers),
      Layer.provide(RpcServer.layerProtocolSocketServer),
      // A small frame limit, so that a test can exceed it.
      Layer.provide(RpcSerialization.layerNdjsonWith({ maxBufferSize: 4096 })),
      Layer.provideMerge(PlatformSocketServer.layer({ port: 0, shutdownTimeout: "1 second" }))
    ),
    scope
  )
  return { scope, port: portOf(context) }
})

const startClient = (port: number) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const protocol = yield* Layer.buildWithScope(
      RpcClient.layerProtocolSocket().pipe(
        Layer.provide(NodeSocket.layerNet({ host: "127.0.0.1", port })),
        Layer.provide(RpcSerialization.layerNdjson)
      ),
      scope
    )
    const client = yield* RpcClient.make(Api).pipe(Effect.provide(protocol), Scope.provide(scope))
    return { scope, client }
  })

/**
 * A raw peer that writes `line`, then keeps its connection open. A stalled one neither reads nor
 * closes (half-open allowed: seeing our FIN does not make Node end its side); `ended` reads again.
 */
const rawPeer = (port: number, line: string, stalled = false) =>
  Effect.callback<{ readonly received: () => string; readonly ended: () => Promise<string> }>((resume) => {
    const chunks: Array<Buffer> = []
    const socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: stalled }, () => {
      socket.write(line)
      if (stalled) socket.pause()
      resume(Effect.succeed({ received: () => Buffer.concat(chunks).toString(), ended }))
    })
    socket.on("data", (data: Buffer) => chunks.push(data))
    const done = new Promise<string>((resolve) => {
      socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
      socket.once("end", () => resolve("FIN"))
    })
    const ended = () => {
      socket.resume()
      return done
    }
  })

const request = (tag: string, payload: unknown) =>
  `${JSON.stringify({ _tag: "Request", id: "1", tag, payload, headers: [] })}\n`

describe("RpcServer (effect/rpc) over PlatformSocketServer", () => {
  it.live("a real RpcClient's calls are answered over TCP", () =>
    Effect.gen(function*() {
      const server = yield* startServer
      const { client, scope } = yield* startClient(server.port)
      expect(yield* client.Shout({ text: "hello" })).toBe("HELLO")
      const many = yield* Effect.all(
        Array.from({ length: 20 }, (_, i) => client.Shout({ text: `call ${i}` })),
        { concurrency: "unbounded" }
      )
      expect(many).toEqual(Array.from({ length: 20 }, (_, i) => `CALL ${i}`))
      yield* Scope.close(scope, Exit.void)
      yield* Scope.close(server.scope, Exit.void)
    }))

  it.live("a frame over the protocol's limit closes that connection as the peer's doing (1009), and others go on", () =>
    Effect.gen(function*() {
      const server = yield* startServer
      const before = yield* counts
      const bad = yield* rawPeer(server.port, "x".repeat(8192))
      expect(yield* Effect.promise(bad.ended)).toBe("FIN")
      for (let i = 0; i < 100 && (yield* counts).SocketClosed === before.SocketClosed; i++) {
        yield* Effect.sleep("20 millis")
      }
      const after = yield* counts
      expect(after.SocketClosed).toBe(before.SocketClosed + 1)
      expect([after.Defect, after.HandlerError]).toEqual([before.Defect, before.HandlerError])
      const { client, scope } = yield* startClient(server.port)
      expect(yield* client.Shout({ text: "still here" })).toBe("STILL HERE")
      yield* Scope.close(scope, Exit.void)
      yield* Scope.close(server.scope, Exit.void)
    }))

  it.live("shutdown with a stalled client ends at the deadline: only the stalled connection is cut off", () =>
    Effect.gen(function*() {
      const server = yield* startServer
      const { client, scope } = yield* startClient(server.port)
      expect(yield* client.Shout({ text: "before" })).toBe("BEFORE")
      // Sends a request that would run for an hour, then neither reads nor closes.
      const stalled = yield* rawPeer(server.port, request("Wait", { seconds: 3600 }), true)
      for (let i = 0; i < 100 && (yield* Metric.value(Metrics.connectionsActive)).value < 2; i++) {
        yield* Effect.sleep("10 millis")
      }
      const before = yield* counts
      yield* Scope.close(server.scope, Exit.void)
      const after = yield* counts
      // Shutdown returned; the deadline cut the stalled connection and nothing else.
      expect(after.ShutdownDeadline).toBe(before.ShutdownDeadline + 1)
      expect([after.Reset, after.Defect, after.HandlerError]).toEqual([
        before.Reset,
        before.Defect,
        before.HandlerError
      ])
      expect(["FIN", "ECONNRESET"]).toContain(yield* Effect.promise(stalled.ended))
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("with serve, a large response to a client that stopped reading is cut off at the deadline too", () =>
    Effect.gen(function*() {
      // With PlatformSocketServer.layer under it, RpcServer's release (first) would wait for this
      // response; serve starts the server's shutdown at the same time.
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        PlatformSocketServer.serve(
          RpcServer.layer(Api).pipe(Layer.provide(handlers), Layer.provide(RpcServer.layerProtocolSocketServer)),
          { port: 0, shutdownTimeout: "1 second" }
        ).pipe(Layer.provide(RpcSerialization.layerNdjson)),
        scope
      )
      const stalled = yield* rawPeer(portOf(context), request("Download", { bytes: 32 * 1024 * 1024 }), true)
      // Until the response fills every buffer between them (bounded wait).
      for (let i = 0; i < 200 && (yield* Metric.value(Metrics.bytesSent)).count < 1; i++) {
        yield* Effect.sleep("10 millis")
      }
      yield* Effect.sleep("200 millis")
      const before = yield* counts
      yield* Scope.close(scope, Exit.void)
      const after = yield* counts
      expect(after.ShutdownDeadline).toBe(before.ShutdownDeadline + 1)
      expect(["FIN", "ECONNRESET"]).toContain(yield* Effect.promise(stalled.ended))
    }))
})
