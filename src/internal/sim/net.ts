/**
 * TCP on loopback, simulated: sockets and listening servers with the surface of Node's
 * `net.Socket` and `net.Server` that this project uses, on top of a model of what a Linux kernel
 * and libuv do, as far as a server can observe it:
 * - each direction has a bounded send buffer (the sender's kernel) and a bounded receive buffer
 *   (the receiver's kernel), so a reader that stalls stops the writer, as TCP's flow control does;
 * - Node's own write buffer sits above them, with its high-water mark, `'drain'`, `end()` and
 *   `'finish'` once the FIN is handed to the kernel;
 * - a FIN follows the data before it; a reset (`resetAndDestroy`, or a close with input unread)
 *   drops the sender's unsent data, and the receiver reads what it had, then sees the reset, or,
 *   as libuv reports it after a partial read, a clean end;
 * - writes after a reset fail (`ECONNRESET`, then `EPIPE`), data sent to a closed socket is
 *   answered with a reset, and libuv's refusal to reset after our FIN (`EINVAL`) is kept;
 * - listeners have an accept queue (a SYN beyond it is dropped and retried, then `ETIMEDOUT`),
 *   Node's `maxConnections` (`'drop'`), and a descriptor limit (`EMFILE` on accept);
 * - reads are split by the seed: one `'data'` is anything from a byte to 64 KiB.
 * No packet is lost or reordered: TCP hides both.
 */
import { EventEmitter } from "node:events"
import type { World } from "./world.js"

/**
 * What the simulated kernels and runtime look like; every size in bytes.
 *
 * @internal
 */
export interface NetOptions {
  /** Each receiver's kernel buffer. */
  readonly receiveBuffer: number
  /** Each sender's kernel buffer. */
  readonly sendBuffer: number
  /** The most one `'data'` carries (libuv reads 64 KiB at a time). */
  readonly maxRead: number
  /** Node's writable high-water mark (16 KiB for a socket). */
  readonly highWaterMark: number
  /** `net.core.somaxconn`: the accept queue is the listener's backlog, at most this. */
  readonly somaxconn: number
  /** Descriptors a listener's process may hold for accepted sockets; beyond, accept fails (`EMFILE`). */
  readonly descriptors: number
}

/** @internal */
export const defaultNetOptions: NetOptions = {
  receiveBuffer: 128 * 1024,
  sendBuffer: 64 * 1024,
  maxRead: 64 * 1024,
  highWaterMark: 16 * 1024,
  somaxconn: 4096,
  descriptors: Number.POSITIVE_INFINITY
}

/** One direction of a connection: the sender's kernel buffer, then the receiver's. */
class Direction {
  send: Array<Buffer> = []
  sendBytes = 0
  receive: Array<Buffer> = []
  receiveBytes = 0
  /** Our FIN: queued behind what the sender's kernel holds, then behind what the receiver's holds. */
  finSent = false
  finArrived = false
  /** A reset arrived at the receiver (behind what its kernel held). */
  resetArrived = false
  private posted = false

  constructor(
    readonly net: Network,
    readonly label: string,
    readonly from: SimSocket,
    readonly to: SimSocket
  ) {}

  /** Posts one step of progress, once, if there is any to make. */
  kick(): void {
    if (this.posted) return
    this.posted = true
    this.net.world.post(this.label, () => {
      this.posted = false
      if (this.progress()) this.kick()
    })
  }

  /** Moves what can move: the sender's kernel to the receiver's, then the receiver's to its reader. */
  private progress(): boolean {
    let moved = false
    const { net } = this
    const to = this.to
    // The wire. A socket closed on the receiving side answers with a reset.
    if (this.sendBytes > 0 && !this.resetArrived) {
      if (to.kernelClosed) {
        this.dropSend()
        this.from.resetByPeer()
        return false
      }
      const room = net.options.receiveBuffer - this.receiveBytes
      if (room > 0) {
        const n = Math.min(room, this.sendBytes, net.world.random.int(1, net.options.maxRead))
        moveBytes(this.send, this.receive, n)
        this.sendBytes -= n
        this.receiveBytes += n
        moved = true
        this.from.flush()
      }
    }
    if (this.finSent && !this.finArrived && this.sendBytes === 0 && !this.resetArrived) {
      this.finArrived = true
      moved = true
    }
    // The reader.
    if (to.reading()) {
      if (this.receiveBytes > 0) {
        const n = Math.min(this.receiveBytes, net.world.random.int(1, net.options.maxRead))
        const chunk = takeBytes(this.receive, n)
        this.receiveBytes -= n
        to.deliver(chunk, this.resetArrived)
        return true
      }
      if (this.resetArrived) {
        to.sawReset("read")
        return false
      }
      if (this.finArrived) to.sawEnd()
    } else if (this.resetArrived && to.writableLength > 0) {
      // Not reading, but with writes waiting for room: libuv polls for it, and the reset wakes that
      // poll, so the waiting write fails (as a paused socket on loopback does).
      to.sawReset("write")
      return false
    }
    return moved && this.sendBytes + this.receiveBytes > 0
  }

  dropSend(): void {
    this.send = []
    this.sendBytes = 0
  }

  /** A reset sent from `from`: its unsent data is gone; `to` reads what its kernel had, then the reset. */
  reset(): void {
    this.dropSend()
    this.resetArrived = true
    this.kick()
  }
}

const moveBytes = (from: Array<Buffer>, to: Array<Buffer>, n: number) => {
  const chunk = takeBytes(from, n)
  to.push(chunk)
}

const takeBytes = (from: Array<Buffer>, n: number): Buffer => {
  const parts: Array<Buffer> = []
  let left = n
  while (left > 0) {
    const head = from[0]!
    if (head.length <= left) {
      parts.push(head)
      from.shift()
      left -= head.length
    } else {
      parts.push(head.subarray(0, left))
      from[0] = head.subarray(left)
      left = 0
    }
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts)
}

class NodeError extends Error {
  constructor(readonly code: string, readonly syscall: string, message: string) {
    super(message)
  }
}

/**
 * One end of a simulated connection, with the members of `net.Socket` this project uses.
 *
 * @internal
 */
export class SimSocket extends EventEmitter {
  localAddress = "127.0.0.1"
  localPort = 0
  remoteAddress: string | undefined = "127.0.0.1"
  remotePort: number | undefined = 0
  connecting = false
  destroyed = false
  errored: Error | null = null
  readableEnded = false
  writableEnded = false
  writableFinished = false
  writableNeedDrain = false
  /** Node's write buffer: bytes written and not yet in the kernel. */
  private pending: Array<Buffer> = []
  writableLength = 0
  readableLength = 0
  /** `null` until something reads (a 'data' listener or `resume()`), as Node's `readableFlowing`. */
  private flowing: boolean | null = null
  /** The kernel socket is closed (its descriptor closed, or reset). */
  kernelClosed = false
  private resetReported = false
  private endPosted = false
  private endEmitted = false
  private finishEmitted = false
  private closeEmitted = false
  private idleMillis = 0
  private cancelIdle: (() => void) | undefined = undefined
  out!: Direction
  in!: Direction

  constructor(
    readonly net: Network,
    readonly name: string,
    readonly allowHalfOpen: boolean
  ) {
    super()
    this.on("newListener", (event: string) => {
      if (event === "data" && this.flowing === null) this.resume()
    })
  }

  // --- Reading.

  reading(): boolean {
    return this.flowing === true && !this.destroyed
  }

  pause(): this {
    this.flowing = false
    return this
  }

  resume(): this {
    this.flowing = true
    this.in?.kick()
    return this
  }

  isPaused(): boolean {
    return this.flowing === false
  }

  /** A read: a 'data' event. After a reset, libuv reports the end of what was read as a clean end. */
  deliver(chunk: Buffer, afterReset: boolean): void {
    this.touch()
    this.emit("data", chunk)
    if (afterReset && this.in.receiveBytes === 0) this.sawEnd()
  }

  sawEnd(): void {
    if (this.endPosted || this.destroyed) return
    this.endPosted = true
    this.net.world.post(`${this.name} end`, () => {
      if (this.destroyed) return
      this.endEmitted = true
      this.readableEnded = true
      this.emit("end")
      if (!this.allowHalfOpen) this.end()
      this.maybeClose()
    })
  }

  /** The reset, reported by a read, or by a write waiting for room on a socket that does not read. */
  sawReset(syscall: "read" | "write"): void {
    if (this.resetReported || this.destroyed) return
    this.resetReported = true
    this.fail("ECONNRESET", syscall)
  }

  /** The peer's kernel answered with a reset (we wrote to a closed socket). */
  resetByPeer(): void {
    this.in.resetArrived = true
    this.in.kick()
  }

  // --- Writing.

  write(data: Uint8Array | string, cb?: (error?: Error | null) => void): boolean {
    const chunk = typeof data === "string"
      ? Buffer.from(data)
      : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    if (this.destroyed) {
      cb?.(new NodeError("ERR_STREAM_DESTROYED", "write", "Cannot call write after a stream was destroyed"))
      return false
    }
    if (this.writableEnded) {
      const error = new NodeError("ERR_STREAM_WRITE_AFTER_END", "write", "write after end")
      this.net.world.post(`${this.name} write-after-end`, () => this.fail(error.code, "write", error))
      cb?.(error)
      return false
    }
    this.touch()
    if (this.in.resetArrived) {
      // The kernel knows the connection is gone: the write fails (ECONNRESET once, EPIPE after).
      // As in Node, the socket is errored and destroyed before `write` returns (a waiting
      // socket's zero-byte probe relies on it); its 'error' and 'close' come later.
      const code = this.resetReported || this.in.finArrived ? "EPIPE" : "ECONNRESET"
      this.resetReported = true
      this.fail(code, "write")
      return false
    }
    if (chunk.length > 0) {
      this.pending.push(chunk)
      this.writableLength += chunk.length
    }
    const below = this.writableLength < this.net.options.highWaterMark
    if (!below) this.writableNeedDrain = true
    this.flush()
    cb?.(null)
    return below
  }

  /** Moves Node's buffer into the kernel's send buffer as far as it has room. */
  flush(): void {
    if (this.destroyed || this.kernelClosed) return
    const out = this.out
    let moved = false
    while (this.pending.length > 0) {
      const room = this.net.options.sendBuffer - out.sendBytes
      if (room <= 0) break
      const head = this.pending[0]!
      const n = Math.min(room, head.length)
      out.send.push(n === head.length ? head : head.subarray(0, n))
      out.sendBytes += n
      this.writableLength -= n
      if (n === head.length) this.pending.shift()
      else this.pending[0] = head.subarray(n)
      moved = true
    }
    if (moved) out.kick()
    if (this.writableLength === 0 && this.writableNeedDrain) {
      this.writableNeedDrain = false
      this.net.world.post(`${this.name} drain`, () => {
        if (!this.destroyed) this.emit("drain")
      })
    }
    if (this.writableLength === 0 && this.writableEnded && !out.finSent) {
      out.finSent = true
      out.kick()
      this.net.world.post(`${this.name} finish`, () => {
        if (this.destroyed || this.finishEmitted) return
        this.finishEmitted = true
        this.writableFinished = true
        this.emit("finish")
        this.maybeClose()
      })
    }
  }

  end(data?: Uint8Array | string | (() => void)): this {
    if (typeof data === "function") this.once("finish", data)
    else if (data !== undefined) this.write(data)
    if (this.writableEnded || this.destroyed) return this
    this.writableEnded = true
    this.flush()
    return this
  }

  // --- Closing.

  // Node destroys a socket once both sides are done (autoDestroy).
  private maybeClose(): void {
    if (this.endEmitted && this.finishEmitted && !this.destroyed) this.destroy()
  }

  /** Closes the descriptor: a FIN after what the kernel holds, or a reset when input is unread. */
  destroy(error?: Error): this {
    if (this.destroyed) return this
    this.destroyed = true
    this.pending = []
    this.writableLength = 0
    this.cancelIdle?.()
    if (!this.kernelClosed && this.out !== undefined) {
      this.kernelClosed = true
      if (this.in.resetArrived) {
        // The connection is already gone: nothing to send.
        this.out.dropSend()
      } else if (this.in.receiveBytes > 0) {
        // Linux resets a connection closed with input unread, and drops what it had not sent.
        this.out.reset()
      } else if (!this.out.finSent) {
        // What the kernel holds still goes out, then the FIN; Node's own buffer is gone.
        this.out.finSent = true
        this.out.kick()
      }
    }
    this.net.closed(this)
    this.net.world.post(`${this.name} close`, () => {
      if (error !== undefined) this.emit("error", error)
      this.emitClose()
    })
    return this
  }

  /** A handshake completed and never accepted, reset as its listener closes. */
  abort(): void {
    if (this.destroyed) return
    this.destroyed = true
    this.kernelClosed = true
    this.out.reset()
    this.net.closed(this)
  }

  /** `SO_LINGER` 0: a reset, refused by libuv once our FIN was handed to it (Node 20 then keeps the socket). */
  resetAndDestroy(): this {
    if (this.destroyed) return this
    if (this.writableEnded && this.writableLength === 0) {
      this.net.world.post(`${this.name} reset-refused`, () => {
        this.errored = new NodeError("EINVAL", "reset", "reset EINVAL")
        this.emit("error", this.errored)
      })
      return this
    }
    this.destroyed = true
    this.pending = []
    this.writableLength = 0
    this.cancelIdle?.()
    if (!this.kernelClosed) {
      this.kernelClosed = true
      this.out.reset()
    }
    this.net.closed(this)
    this.net.world.post(`${this.name} close`, () => this.emitClose())
    return this
  }

  private emitClose(): void {
    if (this.closeEmitted) return
    this.closeEmitted = true
    this.emit("close", this.errored !== null)
  }

  private fail(code: string, syscall: string, error: Error = new NodeError(code, syscall, `${syscall} ${code}`)): void {
    if (this.destroyed) return
    this.errored = error
    this.destroy(error)
  }

  // --- The idle timeout.

  setTimeout(millis: number, callback?: () => void): this {
    if (callback !== undefined) this.once("timeout", callback)
    this.idleMillis = millis
    this.touch()
    return this
  }

  private touch(): void {
    this.cancelIdle?.()
    this.cancelIdle = undefined
    if (this.idleMillis <= 0 || this.destroyed) return
    this.cancelIdle = this.net.world.schedule(this.idleMillis, `${this.name} idle`, () => {
      this.cancelIdle = undefined
      if (!this.destroyed) this.emit("timeout")
    })
  }

  setNoDelay(): this {
    return this
  }

  setKeepAlive(): this {
    return this
  }

  /** Whether the end of input was a reset, as the kernel knows (see `internal/tcpState.ts`). */
  get wasReset(): boolean {
    return this.in.resetArrived
  }
}

/**
 * A listening server, with the members of `net.Server` this project uses.
 *
 * @internal
 */
export class SimServer extends EventEmitter {
  /** 0: no cap, as Node's default. */
  maxConnections = 0
  listening = false
  private port = 0
  private backlog = 511
  private readonly queue: Array<SimSocket> = []
  private connections = 0
  private acceptPosted = false

  constructor(
    readonly net: Network,
    readonly options: { readonly pauseOnConnect?: boolean | undefined; readonly allowHalfOpen?: boolean | undefined }
  ) {
    super()
  }

  listen(options: { readonly port: number; readonly backlog?: number }, callback?: () => void): this {
    const port = options.port === 0 ? this.net.ephemeralPort() : options.port
    this.net.world.post(`listen ${port}`, () => {
      if (this.net.listeners.has(port)) {
        this.emit("error", new NodeError("EADDRINUSE", "listen", `listen EADDRINUSE 127.0.0.1:${port}`))
        return
      }
      this.port = port
      this.backlog = Math.min(options.backlog ?? 511, this.net.options.somaxconn)
      this.listening = true
      this.net.listeners.set(port, this)
      callback?.()
      this.emit("listening")
    })
    return this
  }

  address(): { address: string; family: string; port: number } {
    return { address: "127.0.0.1", family: "IPv4", port: this.port }
  }

  /** A completed handshake, into the accept queue; false when it is full (the SYN is dropped). */
  enqueue(socket: SimSocket): boolean {
    if (!this.listening || this.queue.length >= this.backlog) return false
    this.queue.push(socket)
    if (!this.acceptPosted) {
      this.acceptPosted = true
      this.net.world.post(`accept ${this.port}`, () => this.accept())
    }
    return true
  }

  // libuv accepts everything queued, one 'connection' each.
  private accept(): void {
    this.acceptPosted = false
    while (this.listening && this.queue.length > 0) {
      const socket = this.queue.shift()!
      if (this.net.exhausted || this.net.accepted >= this.net.options.descriptors) {
        // libuv's EMFILE trick: accept with a reserve descriptor and close at once.
        socket.destroy()
        this.emit("error", new NodeError("EMFILE", "accept", "accept EMFILE"))
        continue
      }
      if (this.maxConnections > 0 && this.connections >= this.maxConnections) {
        socket.destroy()
        this.emit("drop", {
          localAddress: socket.localAddress,
          localPort: socket.localPort,
          remoteAddress: socket.remoteAddress,
          remotePort: socket.remotePort,
          remoteFamily: "IPv4"
        })
        continue
      }
      this.connections++
      this.net.accepted++
      socket.once("close", () => {
        this.connections--
        this.net.accepted--
        this.closeIfDrained()
      })
      if (this.options.pauseOnConnect === true) socket.pause()
      this.emit("connection", socket)
    }
  }

  // As Node's: the listening socket closes at once (the handshakes never accepted are reset),
  // and 'close' follows once no accepted socket is left, every time close() is called then.
  close(callback?: () => void): this {
    if (callback !== undefined) this.once("close", callback)
    if (this.listening) {
      this.listening = false
      this.net.listeners.delete(this.port)
      for (const socket of this.queue.splice(0)) socket.abort()
    }
    this.closeIfDrained()
    return this
  }

  private closeIfDrained(): void {
    if (this.listening || this.connections > 0) return
    this.net.world.post(`close ${this.port}`, () => this.emit("close"))
  }
}

/**
 * The simulated network of one world: its listeners, and the sockets open on it.
 *
 * @internal
 */
export class Network {
  readonly listeners = new Map<number, SimServer>()
  /** Sockets whose descriptor is open (not yet destroyed), for leak checks. */
  readonly open = new Set<SimSocket>()
  accepted = 0
  /** A fault: every accept fails with EMFILE while it is set. */
  exhausted = false
  private nextPort = 32768
  private nextConnection = 0

  constructor(readonly world: World, readonly options: NetOptions) {}

  ephemeralPort(): number {
    while (this.listeners.has(this.nextPort)) this.nextPort++
    return this.nextPort++
  }

  createServer(
    options: { readonly pauseOnConnect?: boolean | undefined; readonly allowHalfOpen?: boolean | undefined } = {}
  ): SimServer {
    return new SimServer(this, options)
  }

  /** Connects like `net.connect`: `'connect'`, or `'error'` (`ECONNREFUSED`, `ETIMEDOUT`). */
  connect(options: { readonly port: number; readonly host?: string; readonly allowHalfOpen?: boolean }): SimSocket {
    const id = this.nextConnection++
    const client = new SimSocket(this, `c${id}`, options.allowHalfOpen === true)
    client.connecting = true
    client.localPort = this.ephemeralPort()
    client.remotePort = options.port
    this.open.add(client)
    let tries = 0
    const syn = () => {
      if (client.destroyed) return
      const listener = this.listeners.get(options.port)
      if (listener === undefined) {
        client.connecting = false
        client.errored = new NodeError("ECONNREFUSED", "connect", `connect ECONNREFUSED 127.0.0.1:${options.port}`)
        client.destroy(client.errored)
        return
      }
      const server = new SimSocket(this, `s${id}`, listener.options.allowHalfOpen === true)
      server.localPort = options.port
      server.remotePort = client.localPort
      client.out = new Direction(this, `c${id}>s`, client, server)
      client.in = new Direction(this, `s${id}>c`, server, client)
      server.out = client.in
      server.in = client.out
      if (!listener.enqueue(server)) {
        // The accept queue is full: the SYN is dropped, and retried (1 s, 2 s, ...) up to 5 times.
        if (++tries > 5) {
          client.connecting = false
          client.destroy(new NodeError("ETIMEDOUT", "connect", `connect ETIMEDOUT 127.0.0.1:${options.port}`))
          return
        }
        this.world.schedule(1000 * 2 ** (tries - 1), `c${id} syn-retry`, syn)
        return
      }
      this.open.add(server)
      client.connecting = false
      this.world.post(`c${id} connect`, () => {
        if (!client.destroyed) client.emit("connect")
      })
    }
    this.world.post(`c${id} syn`, syn)
    return client
  }

  closed(socket: SimSocket): void {
    this.open.delete(socket)
  }
}
