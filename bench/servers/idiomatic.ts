/**
 * The idiomatic Effect echo: @effect/platform-node's `NodeSocketServer`, with `socket.run` and
 * `writer` (platformEcho.ts). Prints `listening on HOST:PORT` first.
 */
import { NodeRuntime, NodeSocketServer } from "@effect/platform-node"
import { Effect } from "effect"
import { serve } from "./platformEcho.js"

NodeSocketServer.make({ host: "127.0.0.1", port: 0, allowHalfOpen: true }).pipe(
  Effect.flatMap(serve),
  Effect.scoped,
  NodeRuntime.runMain
)
