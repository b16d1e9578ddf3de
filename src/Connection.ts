/**
 * One accepted TCP connection as a scoped resource: a backpressured read side (pull or `Stream`),
 * a write side that waits for `'drain'`, an explicit half-close, and a release that always
 * closes the socket. The data path is plain `node:net`; Effect is only at its edges. What to do
 * with a connection (deadlines, linger, metrics) is its owner's policy, not decided here.
 *
 * @since 0.1.0
 */
import { Chunk, Data, Duration, Effect, Option, Stream } from "effect"
import type { Scope } from "effect"
import * as errno from "./internal/errno.js"
import * as Socket from "./internal/socket.js"
import type * as TcpState from "./internal/tcpState.js"
import type * as Transport from "./internal/transport.js"
import type * as Listener from "./Listener.js"

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
  /**
   * Close the connection when no byte moves in either direction for this long: with a FIN when
   * everything written was sent, with a reset when bytes are still unsent. Default: never.
   */
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

// Which connection raised an error: a handler's failure with a ConnectionError is that connection's
// end only if it is its own (a proxy's upstream failing is the handler's failure).
const origins = new WeakMap<ConnectionError, Connection>()

/**
 * The connection that raised `error`, if a connection did (one made by hand has none).
 *
 * @internal
 */
export const raisedBy = (error: ConnectionError): Connection | undefined => origins.get(error)

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
  /**
   * Completes when the server that owns this connection begins to shut down: it has stopped
   * accepting, and will cut the connections still open at its deadline. The moment for a protocol
   * to say goodbye at a safe point and end, instead of being cut off. Never completes for a
   * connection no server owns (a client's, or one made with {@link make}).
   */
  readonly draining: Effect.Effect<void>
  /** The connection's counters now. */
  readonly stats: Effect.Effect<Stats>
}

/**
 * Takes ownership of an accepted socket (as `Listener.accept` gives it: paused). The scope's
 * release closes the socket whatever state it is in (with a FIN, or a reset when bytes written
 * are still unsent), and returns once it is closed. At the idle timeout, the connection closes
 * itself the same way.
 *
 * A socket has one owner: making a second connection of the same socket is a defect (two readers
 * of one byte stream would each see a part of it, or all of it twice).
 *
 * A connection is an object whose members live on its class: to decorate one, delegate to it
 * (`{ read: ..., write: c.write, end: c.end, ... }`); spreading it (`{ ...c }`) copies none of
 * its methods.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  socket: Listener.Socket,
  options: Options = {}
): Effect.Effect<Connection, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.suspend(() =>
      kWrapped in socket
        ? Effect.dieMessage("Connection.make: this socket already belongs to a connection")
        : Effect.sync(() => {
          const connection = wrap(socket, options)
          // Named now, while the socket is open: a peer that resets later is still named in its errors.
          void connection.peer
          return connection
        })
    ),
    // Stryker disable next-line StringLiteral: equivalent (Socket.close tells "reset" from anything else)
    (wrapped) => wrapped.close("close")
  )

/**
 * What the owner of a connection learns from it as it happens: bytes as they move (for its
 * metrics), and the idle timeout (its policy decides what that ends). Without an owner, a
 * connection counts only in {@link Stats} and closes itself when idle.
 *
 * @internal
 */
export interface Owner {
  readonly received: (bytes: number) => void
  readonly sent: (bytes: number) => void
  readonly idle: () => void
  /** The echo started with `Owned.echoForOwner` ended: its FIN is out, or the connection failed. */
  readonly echoed: (error: ConnectionError | undefined) => void
}

/**
 * A connection with what only its owner may do: stop reading for good, and close.
 *
 * @internal
 */
export interface Owned extends Connection {
  /**
   * Reads and drops input until the peer's FIN, for at most `atMost`. Closing a socket with
   * unread input makes Linux send RST and throw away what it had not sent yet: a handler that
   * answered without reading everything would see its answer cut short, and the peer a
   * clean-looking end.
   */
  readonly discardInput: (atMost: Duration.Duration) => Effect.Effect<void>
  /**
   * {@link Connection.echo} without a canceler, for an owner that never uses the connection
   * after interrupting the fiber running it (a wake-up after the interruption is ignored). A
   * canceler makes `Effect.async` wrap the wait in `onInterrupt` (an uninterruptible region and
   * an exit handler): a tenth of the server's work per connection under churn (measured).
   */
  readonly echoOwned: Effect.Effect<void, ConnectionError>
  /**
   * The echo with no fiber at all: it runs on Node's callbacks, and tells the owner
   * (`Owner.echoed`) once, when its FIN is out or the connection failed. For an owner that holds
   * the connection in a registry its scope releases.
   */
  readonly echoForOwner: () => void
  /** Whether both FINs are done: ours handed to the kernel, the peer's seen (or the socket closed). */
  readonly finished: boolean
  /** Puts `data` back ahead of what was read: the next pull (or the echo) gets it first. */
  readonly unread: (data: Uint8Array) => void
  /** Names the peer: the client a proxy's header named, instead of the socket's own peer. */
  readonly rename: (peer: string) => void
  /** Closes the socket (see `internal/socket.ts`), and returns once it is closed. */
  readonly close: (how: Socket.How) => Effect.Effect<void>
}

/**
 * The state machine behind a connection. Node's callbacks only record what happened and wake the
 * one fiber waiting for it; every decision is taken in the pull, the write or the end.
 * `verifyEnd` (the connection's two ends, and its transport) makes every end of input checked
 * with the kernel (see `internal/tcpState.ts`): a reset that libuv reported as a clean end is
 * then a `Reset`.
 *
 * @internal
 */
export const wrap = (
  socket: Transport.Socket,
  options: Options = {},
  owner?: Owner,
  draining: Effect.Effect<void> = Effect.never,
  verifyEnd?: VerifyEnd
): Owned =>
  new Wrapped(socket, options.highWaterMark ?? defaults.highWaterMark, owner, draining, options.idleTimeout, verifyEnd)

/**
 * How a connection checks its ends of input.
 *
 * @internal
 */
export interface VerifyEnd {
  readonly ends: TcpState.Ends
  readonly transport: Transport.Transport
}

// One object per connection, its methods shared: a server holds thousands of these, and every
// closure per connection is memory held while it idles and work for the garbage collector when
// it churns. Node's callbacks are shared functions too; each finds its connection on the socket.
const kWrapped = Symbol.for("effect-tcp-echo/Connection")
type Tagged = Transport.Socket & { [kWrapped]: Wrapped }

/**
 * Who consumes the input now:
 * - `pull`: buffered, up to the high-water mark, for `read` and `stream`;
 * - `echo`: written straight back from Node's callback;
 * - `discard`: dropped (the handler is done; waiting for the peer's FIN);
 * - `closed`: the socket is closed, nothing more arrives.
 */
type Mode = "pull" | "echo" | "discard" | "closed"

class Wrapped implements Owned {
  private mode: Mode = "pull"
  // Asked of the kernel (getpeername) when first needed, and the kernel forgets it at a reset:
  // the server asks at once, while the socket is open, whenever a record could name the peer.
  private peerName: string | undefined = undefined
  private received: Array<Uint8Array> = []
  private receivedBytes = 0
  private bytesIn = 0
  private bytesOut = 0
  // The peer's FIN was read: input ended cleanly, whatever fails later.
  private eof = false
  private failure: ConnectionError | undefined = undefined
  // Fibers parked until something happens on the read or the write side. Usually one each; a
  // list, so concurrent callers (a write racing an end) are all woken, never lost.
  private readWaiters: Array<() => void> = []
  private writeWaiters: Array<() => void> = []
  private streamed: Stream.Stream<Uint8Array, ConnectionError> | undefined = undefined
  // Whoever waits for the echo to end: a fiber's resumption, or the owner. Checked whenever the
  // write side moves or the connection fails; one waiter, called once.
  private echoWaiter: ((error: ConnectionError | undefined) => void) | "owner" | undefined = undefined

  constructor(
    private readonly socket: Transport.Socket,
    private readonly highWaterMark: number,
    private readonly owner: Owner | undefined,
    readonly draining: Effect.Effect<void>,
    idleTimeout: Duration.DurationInput | undefined,
    private readonly verifyEnd: VerifyEnd | undefined
  ) {
    ;(socket as Tagged)[kWrapped] = this
    socket.on("data", onData)
    socket.on("end", onEnd)
    socket.on("drain", onDrain)
    socket.on("finish", onFinish)
    socket.on("error", onError)
    socket.on("close", onClose)
    if (idleTimeout !== undefined) socket.setTimeout(Duration.toMillis(idleTimeout), onIdle)
  }

  // Every error this connection raises is known to be its own.
  error(fields: ConstructorParameters<typeof ConnectionError>[0]): ConnectionError {
    const error = new ConnectionError(fields)
    origins.set(error, this)
    return error
  }

  get peer(): string {
    return this.peerName ??= this.socket.remoteAddress === undefined
      ? "a peer gone before its address was read"
      : `${this.socket.remoteAddress}:${this.socket.remotePort}`
  }

  // --- Node's side: record, wake, decide nothing (except the echo's own flow control).

  received_(data: Buffer): void {
    this.bytesIn += data.length
    this.owner?.received(data.length)
    switch (this.mode) {
      case "echo":
        if (!this.writeNow(data)) this.socket.pause()
        return
      case "pull":
        this.received.push(data)
        this.receivedBytes += data.length
        if (this.receivedBytes >= this.highWaterMark) this.socket.pause()
        return this.wakeReader()
        // discard: dropped; closed: nothing arrives after 'close'.
    }
  }

  ended_(): void {
    if (
      this.verifyEnd !== undefined && this.verifyEnd.transport.endWasReset(this.socket, this.verifyEnd.ends) === true
    ) {
      return this.fail(this.error({ reason: "Reset", peer: this.peer, code: "ECONNRESET" }))
    }
    this.eof = true
    // Node emits 'end' only once every byte before the FIN was delivered: all of it is written.
    if (this.mode === "echo") this.socket.end()
    this.wakeReader()
  }

  drained_(): void {
    if (this.mode === "echo" && !this.eof) this.socket.resume()
    this.wakeWriter()
  }

  closed_(): void {
    this.mode = "closed"
    this.wakeReader()
    this.wakeWriter()
  }

  fail(error: ConnectionError): void {
    this.failure ??= error
    this.wakeReader()
    this.wakeWriter()
  }

  idle(): void {
    this.fail(this.error({ reason: "Timeout", peer: this.peer }))
    // Stryker disable next-line StringLiteral: equivalent (Socket.close tells "reset" from anything else)
    if (this.owner === undefined) Socket.close(this.socket, "close")
    else this.owner.idle()
  }

  wakeReader(): void {
    if (this.readWaiters.length === 0) return
    const waiters = this.readWaiters
    this.readWaiters = []
    for (const wake of waiters) wake()
  }

  wakeWriter(): void {
    if (this.echoWaiter !== undefined) this.echoSettled()
    if (this.writeWaiters.length === 0) return
    const waiters = this.writeWaiters
    this.writeWaiters = []
    for (const wake of waiters) wake()
  }

  // --- The fiber's side.

  // What went wrong, if anything. A socket closed without an error (both FINs, or closed from
  // this side) fails further writes too: Node drops writes to a destroyed socket without an event.
  // The error is built only when asked for: closing is the normal end and must stay cheap.
  private failed(): ConnectionError | undefined {
    if (this.failure === undefined && this.mode === "closed") {
      this.failure = this.error({ reason: "BrokenPipe", peer: this.peer, code: "ECLOSED" })
    }
    return this.failure
  }

  // Writing after our own end() or a close must fail, not vanish: Node then drops the write
  // (or destroys the socket) without an event this side would see in time.
  private writeFailed(): ConnectionError | undefined {
    return this.failed() ??
      (this.socket.writableEnded || this.socket.destroyed
        ? this.error({ reason: "BrokenPipe", peer: this.peer, code: "ERR_STREAM_WRITE_AFTER_END" })
        : undefined)
  }

  private readable(): boolean {
    return this.received.length > 0 || this.eof || this.mode === "closed" || this.failure !== undefined
  }

  // Parks until `ready` holds. The condition is checked again where the waiter is registered:
  // the fiber may yield between its own check and this registration, and an event that fired
  // in between would otherwise wake nobody.
  private park(side: "readWaiters" | "writeWaiters", ready: () => boolean): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      if (ready()) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      this[side].push(wake)
      // Stryker disable next-line BlockStatement: equivalent (a waiter left behind only resumes an interrupted fiber, which Effect ignores)
      return Effect.sync(() => {
        const list = this[side]
        const i = list.indexOf(wake)
        // Stryker disable next-line all: equivalent (a waiter left behind only resumes an interrupted fiber, which Effect ignores)
        if (i >= 0) list.splice(i, 1)
      })
    })
  }

  get read(): Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<ConnectionError>> {
    return Effect.suspend(() => this.pull())
  }

  private pull(): Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<ConnectionError>> {
    const socket = this.socket
    if (this.received.length > 0) {
      const chunk = Chunk.unsafeFromArray(this.received)
      this.received = []
      this.receivedBytes = 0
      if (socket.isPaused()) socket.resume()
      return Effect.succeed(chunk)
    }
    // The peer's FIN comes before any later failure of the write side: input ended cleanly.
    if (this.eof) return Effect.fail(Option.none())
    const error = this.failed()
    if (error !== undefined) return Effect.fail(Option.some(error))
    // First pull of a paused socket, or the consumer caught up: let data flow.
    if (socket.isPaused()) socket.resume()
    // Stryker disable next-line ArrowFunction: equivalent (pull checked every condition just before, and a read cannot arrive in between: resume() is asynchronous)
    return Effect.zipRight(this.park("readWaiters", () => this.readable()), this.read)
  }

  // Built on first use: most handlers never ask, and a Stream is several objects per connection.
  get stream(): Stream.Stream<Uint8Array, ConnectionError> {
    return this.streamed ??= Stream.repeatEffectChunkOption(this.read)
  }

  // Waits until Node's write buffer is empty again, or the connection failed.
  private drained(): Effect.Effect<void, ConnectionError> {
    return Effect.suspend(() => {
      const error = this.failed()
      if (error !== undefined) return Effect.fail(error)
      if (!this.socket.writableNeedDrain) return Effect.void
      return Effect.zipRight(
        this.park(
          "writeWaiters",
          // Stryker disable next-line all: equivalent (checked just before, in the same turn: false when registered; the wake on drain is unconditional)
          () => !this.socket.writableNeedDrain || this.mode === "closed" || this.failure !== undefined
        ),
        this.drained()
      )
    })
  }

  private writeNow(data: Uint8Array): boolean {
    this.bytesOut += data.length
    this.owner?.sent(data.length)
    return this.socket.write(data)
  }

  // Handlers pass these around unbound (`Stream.runForEach(connection.write)`): bound on first
  // use, once, so that a connection the echo serves (which never asks) allocates neither.
  private boundWrite: ((data: Uint8Array) => Effect.Effect<void, ConnectionError>) | undefined = undefined
  private boundWriteAll: ((data: Chunk.Chunk<Uint8Array>) => Effect.Effect<void, ConnectionError>) | undefined =
    undefined

  get write(): (data: Uint8Array) => Effect.Effect<void, ConnectionError> {
    return this.boundWrite ??= (data) =>
      Effect.suspend(() => {
        const error = this.writeFailed()
        if (error !== undefined) return Effect.fail(error)
        return this.writeNow(data) ? Effect.void : this.drained()
      })
  }

  get writeAll(): (data: Chunk.Chunk<Uint8Array>) => Effect.Effect<void, ConnectionError> {
    return this.boundWriteAll ??= (data) => this.writeChunk(data)
  }

  private writeChunk(data: Chunk.Chunk<Uint8Array>): Effect.Effect<void, ConnectionError> {
    return Effect.suspend(() => {
      const error = this.writeFailed()
      if (error !== undefined) return Effect.fail(error)
      const buffers = Chunk.toReadonlyArray(data)
      for (let i = 0; i < buffers.length; i++) {
        if (!this.writeNow(buffers[i]!)) {
          return i === buffers.length - 1
            ? this.drained()
            : Effect.zipRight(this.drained(), this.writeChunk(Chunk.drop(data, i + 1)))
        }
      }
      return Effect.void
    })
  }

  private finishedWriting(): Effect.Effect<void, ConnectionError> {
    return Effect.suspend(() => {
      if (this.socket.writableFinished) return Effect.void
      const error = this.failed()
      if (error !== undefined) return Effect.fail(error)
      return Effect.zipRight(
        this.park(
          "writeWaiters",
          () => this.socket.writableFinished || this.mode === "closed" || this.failure !== undefined
        ),
        this.finishedWriting()
      )
    })
  }

  get end(): Effect.Effect<void, ConnectionError> {
    return Effect.suspend(() => {
      const socket = this.socket
      if (socket.writableFinished) return Effect.void
      const error = this.failed()
      if (error !== undefined) return Effect.fail(error)
      if (!socket.writableEnded) socket.end()
      return this.finishedWriting()
    })
  }

  get echo(): Effect.Effect<void, ConnectionError> {
    return this.echoing(true)
  }

  get echoOwned(): Effect.Effect<void, ConnectionError> {
    return this.echoing(false)
  }

  // One asynchronous step from start to FIN: the bytes move on Node's callbacks, and the fiber
  // running this is woken once, when the echo is complete or the connection failed.
  private echoing(cancelable: boolean): Effect.Effect<void, ConnectionError> {
    return Effect.async<void, ConnectionError>((resume) => {
      this.startEcho((error) => resume(error === undefined ? Effect.void : Effect.fail(error)))
      if (!cancelable || this.echoWaiter === undefined) return
      return Effect.sync(() => {
        this.stopEcho()
        this.echoWaiter = undefined
      })
    })
  }

  echoForOwner(): void {
    this.startEcho("owner")
  }

  private startEcho(waiter: ((error: ConnectionError | undefined) => void) | "owner"): void {
    const socket = this.socket
    this.echoWaiter = waiter
    if (this.failed() === undefined) {
      this.mode = "echo"
      // What was read ahead goes back first, in order.
      let full = false
      for (const data of this.received) full = !this.writeNow(data) || full
      this.received = []
      this.receivedBytes = 0
      if (this.eof) {
        if (!socket.writableEnded) socket.end()
      } else if (!full) socket.resume()
    }
    this.echoSettled()
  }

  // Done when the FIN is out, or when the connection failed; any other wake-up (a 'drain') waits on.
  private echoSettled(): void {
    const waiter = this.echoWaiter
    if (waiter === undefined) return
    const error = this.socket.writableFinished ? undefined : this.failed()
    if (error === undefined && !this.socket.writableFinished) return
    this.echoWaiter = undefined
    this.stopEcho()
    if (waiter === "owner") this.owner!.echoed(error)
    else waiter(error)
  }

  private stopEcho(): void {
    if (this.mode === "echo") this.mode = "pull"
  }

  // Reads and discards until the peer's FIN (or the end of the connection).
  // The common case (the peer's FIN already read) costs no timer.
  discardInput(atMost: Duration.Duration): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.eof || this.mode === "closed") return Effect.void
      this.received = []
      this.receivedBytes = 0
      // Stryker disable next-line StringLiteral: equivalent (no check names the discard mode)
      this.mode = "discard"
      this.socket.resume()
      // Dropped data never makes `readable` true: this returns at EOF, close or failure.
      return Effect.asVoid(Effect.timeoutOption(this.park("readWaiters", () => this.readable()), atMost))
    })
  }

  unread(data: Uint8Array): void {
    if (data.length === 0) return
    this.received.unshift(data)
    this.receivedBytes += data.length
    this.wakeReader()
  }

  rename(peer: string): void {
    this.peerName = peer
  }

  get finished(): boolean {
    return this.socket.writableFinished && (this.eof || this.mode === "closed")
  }

  get stats(): Effect.Effect<Stats> {
    return Effect.sync((): Stats => ({
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      buffered: this.receivedBytes + this.socket.readableLength + this.socket.writableLength
    }))
  }

  close(how: Socket.How): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.mode === "closed") return Effect.void
      Socket.close(this.socket, how)
      return Effect.async<void>((resume) => {
        if (this.mode === "closed") return resume(Effect.void)
        this.socket.once("close", () => resume(Effect.void))
      })
    })
  }
}

function onData(this: Tagged, data: Buffer) {
  this[kWrapped].received_(data)
}
function onEnd(this: Tagged) {
  this[kWrapped].ended_()
}
function onDrain(this: Tagged) {
  this[kWrapped].drained_()
}
function onFinish(this: Tagged) {
  this[kWrapped].wakeWriter()
}
function onClose(this: Tagged) {
  this[kWrapped].closed_()
}
function onError(this: Tagged, error: Error) {
  const wrapped = this[kWrapped]
  const code = errno.errnoCode(error)
  const syscall = errno.errnoSyscall(error)
  wrapped.fail(
    wrapped.error({
      reason: errno.connectionReason(code),
      peer: wrapped.peer,
      ...(code === undefined ? {} : { code }),
      ...(syscall === undefined ? {} : { syscall }),
      cause: error
    })
  )
}
function onIdle(this: Tagged) {
  this[kWrapped].idle()
}
