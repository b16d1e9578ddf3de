/**
 * One accepted TCP connection as a scoped resource: a backpressured read side (pull or `Stream`),
 * a write side that waits for `'drain'`, an explicit half-close, and a release that always
 * destroys the socket. The data path is plain `node:net`; Effect is only at its edges.
 *
 * @since 0.1.0
 */
import { Chunk, Data, Duration, Effect, Option, Stream } from "effect"
import type { Scope } from "effect"
import type * as net from "node:net"
import * as errno from "./internal/errno.js"
import * as Metrics from "./Metrics.js"

/**
 * Per-connection policy.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Bytes read ahead of the consumer before the socket is paused. With Node's own readable buffer
   * and one kernel read (at most 64 KiB), it bounds what a connection holds on the read side.
   * Default 64 KiB.
   */
  readonly highWaterMark?: number
  /** Close the connection when no byte moves in either direction for this long. Default: never. */
  readonly idleTimeout?: Duration.DurationInput
}

/**
 * The defaults of {@link Options}.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  highWaterMark: 64 * 1024
} as const

/**
 * Why a connection failed. `Reset` and `BrokenPipe` are the peer going away: expected ends.
 *
 * @since 0.1.0
 * @category errors
 */
export type ConnectionErrorReason = errno.ConnectionReason

/**
 * A connection failed: reset by the peer, written to after the peer left, idle too long, or an
 * error the kernel reported that has no reason of its own.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionError extends Data.TaggedError("ConnectionError")<{
  readonly reason: ConnectionErrorReason
  /** `HOST:PORT` of the peer. */
  readonly peer: string
  /** The errno code (`ECONNRESET`), when the kernel reported one. */
  readonly code?: string
  readonly syscall?: string
  readonly cause?: unknown
}> {
  override get message(): string {
    switch (this.reason) {
      case "Reset":
        return `${this.peer} reset the connection`
      case "BrokenPipe":
        return `${this.peer} is gone: write on a closed connection`
      case "Timeout":
        return `${this.peer} timed out${this.code === undefined ? " (idle)" : ` (${this.code})`}`
      case "Unknown":
        return `connection with ${this.peer} failed: ${this.code ?? String(this.cause)}`
    }
  }
}

/**
 * Counters of one connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly bytesIn: number
  readonly bytesOut: number
  /**
   * Bytes the process holds for this connection now: read ahead and not yet consumed, plus written
   * and not yet handed to the kernel. Bounded by backpressure whatever the peer does.
   */
  readonly buffered: number
}

/**
 * An accepted connection. Everything on it is safe to call after the peer left: it fails with a
 * {@link ConnectionError} instead of throwing or hanging.
 *
 * @since 0.1.0
 * @category models
 */
export interface Connection {
  /** `HOST:PORT` of the peer. */
  readonly peer: string
  /**
   * Pulls what has arrived, waiting when nothing has: every buffer read since the last pull, in
   * order. Fails with `None` at the peer's half-close (end of input). The socket is read only up to
   * the high-water mark ahead of these pulls: a consumer that stops pulling stops the peer.
   */
  readonly read: Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<ConnectionError>>
  /** {@link read} as a stream that ends at the peer's half-close. */
  readonly stream: Stream.Stream<Uint8Array, ConnectionError>
  /** Writes one buffer; when Node's buffer is full, waits for `'drain'` before returning. */
  readonly write: (data: Uint8Array) => Effect.Effect<void, ConnectionError>
  /** Writes buffers in order, waiting for `'drain'` after every write that fills Node's buffer. */
  readonly writeAll: (data: Chunk.Chunk<Uint8Array>) => Effect.Effect<void, ConnectionError>
  /**
   * Half-closes: sends FIN after everything written (the recipe's `shutdown(SHUT_WR)`) and returns
   * once the kernel has it. Reading stays possible. Idempotent.
   */
  readonly end: Effect.Effect<void, ConnectionError>
  /**
   * The recipe's loop on Node's callbacks: every byte read is written straight back; reading pauses
   * whenever a write fills Node's buffer and resumes on `'drain'`; at the peer's half-close, the
   * connection half-closes after the last byte. Succeeds once the FIN is out. Bytes already pulled
   * with `read` are not replayed; bytes read ahead and not pulled are echoed first.
   */
  readonly echo: Effect.Effect<void, ConnectionError>
  /** The connection's counters now. */
  readonly stats: Effect.Effect<Stats>
}

/**
 * Takes ownership of an accepted socket (as `Listener.accept` gives it: paused). The scope's
 * release destroys the socket whatever state it is in, and returns once it is closed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  socket: net.Socket,
  options: Options = {}
): Effect.Effect<Connection, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.sync(() => wrap(socket, options)), (wrapped) => wrapped.destroy)

/**
 * A connection and the effect that destroys it, for owners that manage the scope themselves.
 *
 * @internal
 */
export interface Owned extends Connection {
  readonly destroy: Effect.Effect<void>
  /**
   * Reads and drops input until the peer's FIN. Closing a socket with unread input makes Linux
   * send RST and throw away what it had not sent yet: a handler that answered without reading
   * everything would see its answer cut short, and the peer a clean-looking end.
   */
  readonly discardInput: (atMost: Duration.Duration) => Effect.Effect<void>
  /** What the server does after a handler: {@link Connection.end}, then {@link discardInput}. */
  readonly complete: (atMost: Duration.Duration) => Effect.Effect<void, ConnectionError>
}

/**
 * The state machine behind a connection. Node's callbacks only record what happened and wake the
 * one fiber waiting for it; every decision is taken in the pull, the write or the end.
 * `countBytes` feeds the server's byte metrics (a client in the same process must not).
 *
 * @internal
 */
export const wrap = (socket: net.Socket, options: Options = {}, countBytes = false): Owned => {
  const highWaterMark = options.highWaterMark ?? defaults.highWaterMark
  // Asked of the kernel (getpeername) only when a log line or an error needs it. A peer that
  // reset before its connection was accepted has no address any more.
  let peerName: string | undefined
  const peer = () =>
    (peerName ??= socket.remoteAddress === undefined
      ? "a peer gone before accept"
      : `${socket.remoteAddress}:${socket.remotePort}`)

  let received: Array<Uint8Array> = []
  let receivedBytes = 0
  let bytesIn = 0
  let bytesOut = 0
  let eof = false
  let closed = false
  let failure: ConnectionError | undefined
  // What went wrong, if anything. A socket closed without an error (both FINs, or destroyed from
  // this side) fails further writes too: Node drops writes to a destroyed socket without an event.
  // The error is built only when asked for: closing is the normal end and must stay cheap.
  const failed = (): ConnectionError | undefined => {
    if (failure === undefined && closed) failure = new ConnectionError({ reason: "BrokenPipe", peer: peer(), code: "ECLOSED" })
    return failure
  }
  // Fibers parked until something happens on the read or the write side. Usually one each; a
  // list, so concurrent callers (a write racing an end) are all woken, never lost.
  let readWaiters: Array<() => void> = []
  let writeWaiters: Array<() => void> = []

  const wakeReader = () => {
    if (readWaiters.length === 0) return
    const waiters = readWaiters
    readWaiters = []
    for (const wake of waiters) wake()
  }
  const wakeWriter = () => {
    if (writeWaiters.length === 0) return
    const waiters = writeWaiters
    writeWaiters = []
    for (const wake of waiters) wake()
  }
  const fail = (error: ConnectionError) => {
    failure ??= error
    wakeReader()
    wakeWriter()
  }

  // While `echo` runs, bytes go straight back on Node's callbacks, as `socket.pipe(socket)` would.
  let echoing = false
  // After the handler is done: input is read and dropped so that closing does not reset.
  let discarding = false

  socket.on("data", (data: Buffer) => {
    bytesIn += data.length
    if (countBytes) Metrics.bytesReceived.unsafeUpdate(data.length, noTags)
    if (echoing) {
      if (!writeNow(data)) socket.pause()
      return
    }
    if (discarding) return
    received.push(data)
    receivedBytes += data.length
    if (receivedBytes >= highWaterMark) socket.pause()
    wakeReader()
  })
  socket.on("end", () => {
    eof = true
    // Node emits 'end' only once every byte before the FIN was delivered: all of it is written.
    if (echoing) socket.end()
    wakeReader()
  })
  socket.on("drain", () => {
    if (echoing && !eof) socket.resume()
    wakeWriter()
  })
  socket.on("finish", wakeWriter)
  socket.on("error", (error: Error) => {
    const code = errno.errnoCode(error)
    const syscall = errno.errnoSyscall(error)
    fail(
      new ConnectionError({
        reason: errno.connectionReason(code),
        peer: peer(),
        ...(code === undefined ? {} : { code }),
        ...(syscall === undefined ? {} : { syscall }),
        cause: error
      })
    )
  })
  socket.on("close", () => {
    closed = true
    wakeReader()
    wakeWriter()
  })
  if (options.idleTimeout !== undefined) {
    const idleMs = Duration.toMillis(options.idleTimeout)
    socket.setTimeout(idleMs, () => {
      fail(new ConnectionError({ reason: "Timeout", peer: peer() }))
      socket.destroy()
    })
  }

  // Parks until `ready` holds. The condition is checked again where the waiter is registered:
  // the fiber may yield between its own check and this registration, and an event that fired
  // in between would otherwise wake nobody.
  const park = (waiters: () => Array<() => void>, ready: () => boolean) =>
    Effect.async<void>((resume) => {
      if (ready()) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      waiters().push(wake)
      return Effect.sync(() => {
        const list = waiters()
        const i = list.indexOf(wake)
        if (i >= 0) list.splice(i, 1)
      })
    })
  const readable = () => received.length > 0 || eof || closed || failure !== undefined
  const waitRead = park(() => readWaiters, readable)
  const waitDrain = park(() => writeWaiters, () => !socket.writableNeedDrain || closed || failure !== undefined)
  const waitFinish = park(() => writeWaiters, () => socket.writableFinished || closed || failure !== undefined)

  // Writing after our own end() or a destroy must fail, not vanish: Node then drops the write
  // (or destroys the socket) without an event this side would see in time.
  const writeFailed = (): ConnectionError | undefined =>
    failed() ??
      (socket.writableEnded || socket.destroyed
        ? new ConnectionError({ reason: "BrokenPipe", peer: peer(), code: "ERR_STREAM_WRITE_AFTER_END" })
        : undefined)

  const read: Connection["read"] = Effect.suspend(() => {
    if (received.length > 0) {
      const chunk = Chunk.unsafeFromArray(received)
      received = []
      receivedBytes = 0
      if (socket.isPaused()) socket.resume()
      return Effect.succeed(chunk)
    }
    // The peer's FIN comes before any later failure of the write side: input ended cleanly.
    if (eof) return Effect.fail(Option.none())
    const error = failed()
    if (error !== undefined) return Effect.fail(Option.some(error))
    // First pull of a paused socket, or the consumer caught up: let data flow.
    if (socket.isPaused()) socket.resume()
    return Effect.zipRight(waitRead, read)
  })

  // Waits until Node's write buffer is empty again, or the connection failed.
  const drained: Effect.Effect<void, ConnectionError> = Effect.suspend(() => {
    const error = failed()
    if (error !== undefined) return Effect.fail(error)
    if (!socket.writableNeedDrain) return Effect.void
    return Effect.zipRight(waitDrain, drained)
  })

  const writeNow = (data: Uint8Array): boolean => {
    bytesOut += data.length
    if (countBytes) Metrics.bytesSent.unsafeUpdate(data.length, noTags)
    return socket.write(data)
  }

  const write = (data: Uint8Array): Effect.Effect<void, ConnectionError> =>
    Effect.suspend(() => {
      const error = writeFailed()
      if (error !== undefined) return Effect.fail(error)
      return writeNow(data) ? Effect.void : drained
    })

  const writeAll = (data: Chunk.Chunk<Uint8Array>): Effect.Effect<void, ConnectionError> =>
    Effect.suspend(() => {
      const error = writeFailed()
      if (error !== undefined) return Effect.fail(error)
      const buffers = Chunk.toReadonlyArray(data)
      for (let i = 0; i < buffers.length; i++) {
        if (!writeNow(buffers[i]!)) {
          return i === buffers.length - 1
            ? drained
            : Effect.zipRight(drained, writeAll(Chunk.drop(data, i + 1)))
        }
      }
      return Effect.void
    })

  const finished: Effect.Effect<void, ConnectionError> = Effect.suspend(() => {
    if (socket.writableFinished) return Effect.void
    const error = failed()
    if (error !== undefined) return Effect.fail(error)
    return Effect.zipRight(waitFinish, finished)
  })

  const end: Connection["end"] = Effect.suspend(() => {
    if (socket.writableFinished) return Effect.void
    const error = failed()
    if (error !== undefined) return Effect.fail(error)
    if (!socket.writableEnded) socket.end()
    return finished
  })

  // One asynchronous step from start to FIN: the bytes move on Node's callbacks, and the fiber
  // running this is woken once, when the echo is complete or the connection failed.
  const echo: Connection["echo"] = Effect.async<void, ConnectionError>((resume) => {
    const error = failed()
    if (error !== undefined) return resume(Effect.fail(error))
    echoing = true
    // What was read ahead goes back first, in order.
    let full = false
    for (const data of received) full = !writeNow(data) || full
    received = []
    receivedBytes = 0
    if (eof) {
      if (!socket.writableEnded) socket.end()
    } else if (!full) socket.resume()
    // Done when the FIN is out, or when the connection failed; any other wake-up (a 'drain')
    // waits again.
    const settled = (): boolean => {
      if (socket.writableFinished) {
        echoing = false
        resume(Effect.void)
        return true
      }
      const error = failed()
      if (error === undefined) return false
      echoing = false
      resume(Effect.fail(error))
      return true
    }
    if (settled()) return
    const wake = () => {
      if (!settled()) writeWaiters.push(wake)
    }
    writeWaiters.push(wake)
    return Effect.sync(() => {
      echoing = false
      const i = writeWaiters.indexOf(wake)
      if (i >= 0) writeWaiters.splice(i, 1)
    })
  })

  let stream: Stream.Stream<Uint8Array, ConnectionError> | undefined

  // Reads and discards until the peer's FIN (or the end of the connection).
  // The common case (the peer's FIN already read) costs no timer.
  const discardInput: Owned["discardInput"] = (atMost) =>
    Effect.suspend(() => {
      if (eof || closed) return Effect.void
      received = []
      receivedBytes = 0
      discarding = true
      socket.resume()
      // Dropped data never makes `readable` true: this returns at EOF, close or failure.
      return Effect.asVoid(Effect.timeoutOption(waitRead, atMost))
    })

  const complete: Owned["complete"] = (atMost) =>
    Effect.suspend(() =>
      socket.writableFinished && (eof || closed) ? Effect.void : Effect.zipRight(end, discardInput(atMost))
    )

  const stats = Effect.sync((): Stats => ({
    bytesIn,
    bytesOut,
    buffered: receivedBytes + socket.readableLength + socket.writableLength
  }))

  const destroy = Effect.suspend(() => {
    if (closed) return Effect.void
    socket.destroy()
    return Effect.async<void>((resume) => {
      if (closed) return resume(Effect.void)
      socket.once("close", () => resume(Effect.void))
    })
  })

  return {
    get peer() {
      return peer()
    },
    read,
    // Built on first use: most handlers never ask, and a Stream is several objects per connection.
    get stream() {
      return (stream ??= Stream.repeatEffectChunkOption(read))
    },
    write,
    writeAll,
    end,
    echo,
    stats,
    discardInput,
    complete,
    destroy
  }
}

const noTags: ReadonlyArray<never> = []
