/**
 * Peers whose echo a server has read whole and not yet handed to the kernel: what a process that
 * ends abruptly would lose behind a clean-looking FIN, unless it resets the connection first. The
 * kernel's own queues (`/proc/net/tcp`) tell when a peer is there.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as TcpState from "../../src/internal/tcpState.js"

/** `127.0.0.1:port` as `/proc/net/tcp` prints it. */
const hex = (port: number) => {
  const octets = [127, 0, 0, 1]
  if (os.endianness() === "LE") octets.reverse()
  return `${octets.map((o) => o.toString(16).padStart(2, "0")).join("").toUpperCase()}:${
    port.toString(16).toUpperCase().padStart(4, "0")
  }`
}

/** The send and receive queues (bytes) of the loopback connection from `local` to `remote`. */
export const queues = (local: number, remote: number): { readonly tx: number; readonly rx: number } | undefined => {
  const key = ` ${hex(local)} ${hex(remote)} `
  const line = fs.readFileSync("/proc/net/tcp", "latin1").split("\n").find((l) => l.includes(key))
  const [tx, rx] = (line?.trim().split(/\s+/)[4] ?? "").split(":").map((n) => parseInt(n, 16))
  return tx === undefined || rx === undefined || Number.isNaN(tx) || Number.isNaN(rx) ? undefined : { tx, rx }
}

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

/** A peer, half-closed, that read none of its echo. */
export interface Stranded {
  readonly socket: net.Socket
  /** Its ends, read while it was open (a reset socket no longer knows its peer). */
  readonly ends: TcpState.Ends
  readonly sent: number
  /** What the server holds of its echo in its own process, having read all it was sent. */
  readonly held: number
}

/** What the kernels hold of a connection's bytes, at most: the largest send buffer, and a receive window. */
const kernelsHold = (() => {
  try {
    return Number(fs.readFileSync("/proc/sys/net/ipv4/tcp_wmem", "latin1").trim().split(/\s+/)[2]) + 256 * 1024
  } catch {
    return 4 * 1024 * 1024
  }
})()

/** Steps: large far from the room the kernels have, then medium, then small near it. */
const steps = [[256 * 1024, 1024 * 1024], [64 * 1024, 256 * 1024], [16 * 1024, 0]] as const

/**
 * One try: sends large steps up to `room` less a margin, then smaller ones, reading nothing, until
 * the server has read all of it (its receive queue is empty) and holds part of its echo itself.
 * Past that (the server stopped reading with bytes left in its queue), what the kernels held
 * then: the room to try with next time.
 */
const attempt = async (port: number, room: number): Promise<Stranded | { readonly room: number }> => {
  const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true })
  socket.on("error", () => {})
  await new Promise((resolve) => socket.once("connect", resolve))
  socket.pause()
  const ends = TcpState.ends(socket)!
  let sent = 0
  const look = () => {
    const server = queues(port, ends.localPort)
    const peer = queues(ends.localPort, port)
    if (server === undefined || peer === undefined) return undefined
    // Once the peer half-closed, the server's receive queue counts its FIN as one more, until read.
    const unread = Math.max(0, server.rx - (socket.writableEnded ? 1 : 0))
    const kernels = peer.tx + server.tx + peer.rx
    return { unread, kernels, held: sent - socket.writableLength - socket.readableLength - unread - kernels }
  }
  // The queues once nothing moves between two looks (bounded).
  const settled = async () => {
    let last = JSON.stringify(look())
    for (let i = 0; i < 200; i++) {
      await sleep(5)
      const now = JSON.stringify(look())
      if (now === last) break
      last = now
    }
    return look()
  }
  while (sent < 32 * 1024 * 1024) {
    const step = steps.find(([size, margin]) => sent + size <= room - margin)?.[0] ?? 16 * 1024
    socket.write(Buffer.alloc(step, 7))
    sent += step
    const state = await settled()
    if (state === undefined) break
    if (state.unread > 0) {
      socket.destroy()
      return { room: state.kernels }
    }
    if (state.held > 0) {
      socket.end()
      await settled()
      return { socket, ends, sent, held: state.held }
    }
  }
  socket.destroy()
  return { room: 0 }
}

/**
 * Connects to `port` and sends, reading nothing, until the server has read all of it while part
 * of the echo waits in the server's own buffer, the kernels' being full; then half-closes, as a
 * client that waits for its answer does. Bounded: a few tries, 32 MiB each at most.
 */
export const strand = async (port: number): Promise<Stranded> => {
  let room = kernelsHold
  for (let i = 0; i < 4; i++) {
    const result = await attempt(port, room)
    if ("socket" in result) return result
    room = result.room
  }
  throw new Error(`no echo was left in the server's buffer with its input read whole (room ${room})`)
}

/**
 * How a stranded peer's answer ended, read to its end: whole then a FIN, a reset, or short then
 * a FIN (a cut-off answer that passes for a complete one).
 */
export const ending = (peer: Stranded): Promise<"whole+FIN" | "RST" | "short+FIN"> =>
  new Promise((resolve) => {
    let received = 0
    const socket = peer.socket
    socket.on("data", (data: Buffer) => (received += data.length))
    socket.once("error", () => resolve("RST"))
    socket.once("end", () => {
      // libuv may report a reset right behind the last bytes as an end: the kernel can tell.
      if (TcpState.wasReset(peer.ends) === true) return resolve("RST")
      resolve(received === peer.sent ? "whole+FIN" : "short+FIN")
    })
    socket.resume()
  })
