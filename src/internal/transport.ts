/**
 * The seam between the server and the network it runs on: what a listener, a connection, a client
 * and the test kit need of sockets, servers and time. `node:net` and the real clock by default;
 * the simulated network and its virtual clock in `TestKit`'s simulation. The server's code is the
 * same on both, and on Node it pays one lookup per listener and per client for the seam.
 */
import { reference } from "#line/types"
import * as net from "node:net"
import * as TcpState from "./tcpState.js"

/**
 * The members of `net.Socket` this project uses, and nothing else: `node:net`'s sockets have them,
 * and so do the simulation's. Not marked internal: `Listener.Socket` and `TestKit.PeerSocket`
 * are this type, and the published declarations must keep it.
 */
export interface Socket {
  /** Adds a listener for `event`, as `net.Socket`'s `on`. */
  on(event: string, listener: (...args: Array<any>) => void): this
  /** Adds a listener for the next `event` only. */
  once(event: string, listener: (...args: Array<any>) => void): this
  /** Removes a listener. */
  off(event: string, listener: (...args: Array<any>) => void): this
  /** Removes a listener (`off`). */
  removeListener(event: string, listener: (...args: Array<any>) => void): this
  /** Queues bytes to send; false once Node's buffer is past its high-water mark (wait for `'drain'`). */
  write(data: Uint8Array | string): boolean
  /** Half-closes: a FIN after everything queued. */
  end(data?: Uint8Array | string | (() => void)): this
  /** Closes at once, dropping what Node still queues. */
  destroy(): this
  /** Closes with a reset (RST). */
  resetAndDestroy(): this
  /** Stops reading: the kernel's window then stops the peer. */
  pause(): this
  /** Reads again. */
  resume(): this
  /** Whether reading is paused. */
  isPaused(): boolean
  /** Calls `callback` after `millis` with nothing moving either way (0: never). */
  setTimeout(millis: number, callback?: () => void): this
  readonly remoteAddress?: string | undefined
  readonly remotePort?: number | undefined
  readonly localAddress?: string | undefined
  readonly localPort?: number | undefined
  readonly destroyed: boolean
  readonly errored: Error | null
  readonly writableEnded: boolean
  readonly writableFinished: boolean
  readonly writableNeedDrain: boolean
  readonly writableLength: number
  readonly readableLength: number
  readonly readableEnded: boolean
}

/**
 * The members of `net.Server` the listener uses.
 *
 * @internal
 */
export interface Server {
  on(event: "connection", listener: (socket: Socket) => void): this
  on(event: "drop", listener: (drop?: net.DropArgument) => void): this
  on(event: "error", listener: (error: Error) => void): this
  once(event: "error", listener: (error: Error) => void): this
  off(event: "error", listener: (error: Error) => void): this
  listen(options: net.ListenOptions, callback: () => void): this
  close(callback?: (error?: Error) => void): this
  address(): net.AddressInfo | string | null
  maxConnections: number
}

/**
 * What the server runs on.
 *
 * @internal
 */
export interface Transport {
  readonly createServer: (options: net.ServerOpts) => Server
  /** Connects like `net.connect`: the socket emits `'connect'`, or `'error'`. */
  readonly connect: (
    options: { readonly host: string; readonly port: number; readonly allowHalfOpen: boolean }
  ) => Socket
  /** Monotonic milliseconds. */
  readonly now: () => number
  /** Runs `fire` after `millis`; returns its cancel. Does not keep the process alive. */
  readonly schedule: (millis: number, fire: () => void) => () => void
  /**
   * After an end of input: whether it was a reset that the socket reported as a clean end (see
   * `internal/tcpState.ts`); `undefined` when it cannot be told.
   */
  readonly endWasReset: (socket: Socket, ends: TcpState.Ends) => boolean | undefined
}

const empty = Buffer.alloc(0)

/**
 * `node:net`, the real clock, and the kernel's word on an end of input. While the socket still
 * writes, a write of zero bytes sends nothing and fails at once on a connection that was reset
 * (Node marks the socket `errored` before `write` returns); once it has half-closed, only the
 * kernel's table of connections can tell.
 *
 * @internal
 */
export const node: Transport = {
  createServer: (options) => net.createServer(options) as unknown as Server,
  connect: (options) => net.connect(options),
  now: () => performance.now(),
  schedule: (millis, fire) => {
    const timer = setTimeout(fire, millis)
    timer.unref()
    return () => clearTimeout(timer)
  },
  endWasReset: (socket, ends) => {
    if (!socket.writableEnded && socket.writableLength === 0 && !socket.destroyed) {
      socket.write(empty)
      return socket.errored !== null
    }
    return TcpState.wasReset(ends)
  }
}

/**
 * The transport of the current fiber: `node:net` unless a simulation provides its own.
 *
 * @internal
 */
export const CurrentTransport = reference<Transport>("effect-tcp-echo/Transport", () => node)
