/**
 * @effect/platform code (`SocketServer.run`, `socket.run`, `socket.writer`: platformEcho.ts), the
 * same as bench/servers/idiomatic.ts, on this server through `PlatformSocketServer`. Prints
 * `listening on HOST:PORT` first.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { PlatformSocketServer } from "../../src/index.js"
import { serve } from "./platformEcho.js"

PlatformSocketServer.make({ port: 0, shutdownTimeout: "1 second" }).pipe(
  Effect.flatMap(serve),
  Effect.scoped,
  NodeRuntime.runMain
)
