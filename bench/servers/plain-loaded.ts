/**
 * A control for the stream load: plain Node's `socket.pipe(socket)`, in a process that has first
 * loaded every module `serve` loads (Effect, @effect/platform-node and this
 * project). What this server loses against `plain` is the cost of the process's size, not of
 * any echo path. Prints `HOST:PORT` first.
 */
import * as net from "node:net"

await import("../../src/Cli.js")
await import("@effect/platform-node/NodeContext")
await import("@effect/platform-node/NodeRuntime")

const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  socket.on("error", () => socket.destroy())
  socket.pipe(socket)
})
server.listen({ host: "127.0.0.1", port: 0 }, () => {
  const { address, port } = server.address() as net.AddressInfo
  console.log(`listening on ${address}:${port}`)
})
process.on("SIGTERM", () => server.close(() => process.exit(0)))
