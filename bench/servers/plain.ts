/**
 * The reference: Node's own stream pipe, with half-close allowed. Prints `HOST:PORT` first.
 */
import * as net from "node:net"

const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  socket.on("error", () => socket.destroy())
  socket.pipe(socket)
})
server.listen({ host: "127.0.0.1", port: 0 }, () => {
  const { address, port } = server.address() as net.AddressInfo
  console.log(`listening on ${address}:${port}`)
})
const stop = () => {
  server.close(() => process.exit(0))
  // Plain Node has no shutdown policy: like the idiomatic server, it waits for every connection.
}
process.on("SIGINT", stop)
process.on("SIGTERM", stop)
