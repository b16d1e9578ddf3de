/**
 * An @effect/rpc server over TCP (its socket protocol, ndjson), on this server through
 * `PlatformSocketServer` (`rpc.js this`) or on @effect/platform-node's own `NodeSocketServer`
 * (`rpc.js node`): the same RpcServer, only the SocketServer under it differs. Prints
 * `listening on HOST:PORT` first.
 */
import { SocketServer } from "@effect/platform"
import { NodeRuntime, NodeSocketServer } from "@effect/platform-node"
import { RpcSerialization, RpcServer } from "@effect/rpc"
import { Effect, Layer } from "effect"
import { PlatformSocketServer } from "../../src/index.js"
import { Api, handlers } from "../rpc/api.js"

const socketServer: Layer.Layer<SocketServer.SocketServer, unknown> = process.argv[2] === "node"
  ? NodeSocketServer.layer({ host: "127.0.0.1", port: 0 })
  : PlatformSocketServer.layer({ port: 0, shutdownTimeout: "1 second" })

const announce = Layer.effectDiscard(Effect.flatMap(SocketServer.SocketServer, (server) =>
  Effect.sync(() => {
    const address = server.address
    if (address._tag === "TcpAddress") console.log(`listening on ${address.hostname}:${address.port}`)
  })))

RpcServer.layer(Api).pipe(
  Layer.provide(handlers),
  Layer.provide(RpcServer.layerProtocolSocketServer),
  Layer.provide(RpcSerialization.layerNdjson),
  Layer.merge(announce),
  Layer.provide(socketServer),
  Layer.launch,
  NodeRuntime.runMain
)
