/**
 * The object Node's callbacks drive for one connection: who takes the bytes read (a puller, the
 * echo, or nobody), what happened to the connection (the peer's FIN, a failure), and the fibers
 * parked until one of those moves. Node's callbacks only record and wake; every decision is taken
 * in the read, the write or the end of the fiber that asked.
 */
import { callback } from "#line/runtime"
import type { Buffers, DurationInput, Read } from "#line/types"
import { buffersArray, readBuffers, readEnd, readFail, streamOf } from "#line/types"
import { Duration, Effect } from "effect"
import type { Stream } from "effect"
import type { Connection, Options, RunOptions, Stats } from "../Connection.js"
import { ConnectionError, defaults } from "../Connection.js"
import * as errno from "./errno.js"
import * as Socket from "./socket.js"
import type * as TcpState from "./tcpState.js"
import type * as Transport from "./transport.js"

/**
 * What the owner of a connection learns from it as it happens: bytes as they move (for its
 * metrics), and the idle timeout (its policy decides what that ends). Without an owner, a
 * connection counts only in its stats and closes itself when idle.
 *
 * @internal
 */
export interface Owner {
  readonly received: (bytes: number) => void
  readonly sent: (bytes: number) => void
  readonly idle: () => void
}

/**
 * Who is told, once, that an echo on Node's callbacks ended: our FIN is out (`undefined`), or the
 * connection failed.
 *
 * @internal
 */
export interface EchoDone {
  readonly echoed: (error: ConnectionError | undefined) => void
}

/**
 * How a connection checks its ends of input: with the kernel, through its transport (see
 * `tcpState.ts`), so that a reset that libuv reported as a clean end is a `Reset`.
 *
 * @internal
 */
export interface VerifyEnd {
  readonly ends: TcpState.Ends
  readonly transport: Transport.Transport
}

/**
 * Who takes the bytes Node reads, with what it needs:
 * - `Pull`: kept, up to the high-water mark, for `read`, `stream` and `run`;
 * - `Echo`: written straight back; `done` is told once, when our FIN is out or the connection
 *   failed;
 * - `Discard`: dropped (the handler is done; waiting for the peer's FIN);
 * - `Closed`: the socket is closed, nothing more arrives; what a `Pull` held and nobody took yet
 *   is still there to take (both FINs close the socket, whether or not the reader caught up).
 */
type Consumer =
  | { readonly _tag: "Pull"; buffered: Array<Uint8Array>; bytes: number }
  | { readonly _tag: "Echo"; readonly done: EchoDone }
  | { readonly _tag: "Discard" }
  | { readonly _tag: "Closed"; buffered: Array<Uint8Array>; bytes: number }

/** The consumers that hold input for the fiber to take. */
type Holding = Extract<Consumer, { readonly buffered: Array<Uint8Array> }>
const holds = (consumer: Consumer): consumer is Holding => consumer._tag === "Pull" || consumer._tag === "Closed"

type Echo = Extract<Consumer, { readonly _tag: "Echo" }>

const discard: Consumer = { _tag: "Discard" }
// Shared: nothing is ever added to a Closed's input, and a pull only empties one that holds some.
const closed: Consumer = { _tag: "Closed", buffered: [], bytes: 0 }
const pull = (): Consumer => ({ _tag: "Pull", buffered: [], bytes: 0 })

/**
 * Parked fibers, woken all at once. A fiber's wait is not taken back when it is interrupted (a
 * canceler costs an uninterruptible region per wait): what is woken re-checks its condition in
 * the fiber, and a wake-up of an interrupted fiber is ignored by Effect. So that waits abandoned
 * while nothing moves (a read under a short timeout, in a loop) cannot pile up, a list that
 * reaches `wakeAllAt` is woken whole: the live waiters check again and park once more.
 */
const wakeAllAt = 16

const wake = (waiters: Array<() => void>): void => {
  // Waiters that wake may park again, into the same list: take them out first.
  const all = waiters.splice(0)
  for (const resume of all) resume()
}

const kDriven = Symbol.for("effect-tcp-echo/Connection")
type Tagged = Transport.Socket & { [kDriven]: Driven }

// Which connection raised an error: a handler's failure with a ConnectionError is that connection's
// end only if it is its own (a proxy's upstream failing is the handler's failure).
const origins = new WeakMap<ConnectionError, Connection>()

/**
 * The connection that raised `error`, if a connection did (one made by hand has none).
 *
 * @internal
 */
export const raisedBy = (error: ConnectionError): Connection | undefined => origins.get(error)

// Objects that delegate to a connection (a client's), with the connection they delegate to.
const delegates = new WeakMap<Connection, Driven>()

/**
 * The connection object behind `connection`: itself, or the one a delegate delegates to (see
 * {@link delegate}); `undefined` for a connection made elsewhere.
 *
 * @internal
 */
export const of = (connection: Connection): Driven | undefined =>
  connection instanceof Driven ? connection : delegates.get(connection)

/**
 * Records that `wrapper` delegates to `driven`, for {@link of}.
 *
 * @internal
 */
export const delegate = <A extends Connection>(wrapper: A, driven: Driven): A => {
  delegates.set(wrapper, driven)
  return wrapper
}

/**
 * How this package's own code runs a connection: as {@link RunOptions} say, and also until
 * `until` holds (checked between two buffers, and when {@link Driven.wakeRuns} is called).
 *
 * @internal
 */
export interface InternalRunOptions extends RunOptions {
  readonly until?: () => boolean
}

/**
 * Whether `socket` already belongs to a connection.
 *
 * @internal
 */
export const isOwned = (socket: Transport.Socket): boolean => kDriven in socket

/**
 * Takes `socket` over. `draining` is the owner's drain notice ({@link Connection.draining}).
 *
 * @internal
 */
export const drive = (
  socket: Transport.Socket,
  options: Options = {},
  owner?: Owner,
  draining: Effect.Effect<void> = Effect.never,
  verifyEnd?: VerifyEnd
): Driven =>
  new Driven(socket, options.highWaterMark ?? defaults.highWaterMark, owner, draining, options.idleTimeout, verifyEnd)

/**
 * A connection with what only its owner may do. One object per connection with its methods on
 * the class: a server holds thousands of these, and a closure per connection is memory held
 * while it idles and work for the garbage collector when it churns.
 *
 * @internal
 */
export class Driven implements Connection {
  private consumer: Consumer = pull()
  // The peer's FIN was read: input ended cleanly, whatever fails later.
  private fin = false
  // The first failure, of either side.
  private failure: ConnectionError | undefined = undefined
  // The owner's drain notice came (see `notifyDrain`): `run(f, { untilDrain })` returns.
  private drainNoticed = false
  // Asked of the kernel (getpeername) when first needed, and the kernel forgets it at a reset:
  // the server asks at once, while the socket is open, whenever a record could name the peer.
  private peerName: string | undefined = undefined
  private bytesIn = 0
  private bytesOut = 0
  // Fibers parked until input moves (bytes, the FIN, a failure, the close) or output does.
  private readonly readers: Array<() => void> = []
  private readonly writers: Array<() => void> = []
  // Built on first use: most handlers need only some of these.
  private pulled: Read<ConnectionError> | undefined = undefined
  private streamed: Stream.Stream<Uint8Array, ConnectionError> | undefined = undefined
  private ending: Effect.Effect<void, ConnectionError> | undefined = undefined
  private echoing: Effect.Effect<void, ConnectionError> | undefined = undefined
  private boundWrite: ((data: Uint8Array) => Effect.Effect<void, ConnectionError>) | undefined = undefined
  private boundWriteAll: ((data: Buffers) => Effect.Effect<void, ConnectionError>) | undefined = undefined

  constructor(
    private readonly socket: Transport.Socket,
    private readonly highWaterMark: number,
    private readonly owner: Owner | undefined,
    readonly draining: Effect.Effect<void>,
    idleTimeout: DurationInput | undefined,
    private readonly verifyEnd: VerifyEnd | undefined
  ) {
    ;(socket as Tagged)[kDriven] = this
    socket.on("data", Driven.onData)
    socket.on("end", Driven.onEnd)
    socket.on("drain", Driven.onDrain)
    socket.on("finish", Driven.onFinish)
    socket.on("error", Driven.onError)
    socket.on("close", Driven.onClose)
    if (idleTimeout !== undefined) socket.setTimeout(Duration.toMillis(idleTimeout), Driven.onIdle)
  }

  // --- Node's side: record, wake, decide nothing (but the echo's own flow control).

  private static onData(this: Tagged, data: Buffer): void {
    const self = this[kDriven]
    self.bytesIn += data.length
    self.owner?.received(data.length)
    const consumer = self.consumer
    switch (consumer._tag) {
      case "Pull":
        consumer.buffered.push(data)
        consumer.bytes += data.length
        if (consumer.bytes >= self.highWaterMark) this.pause()
        return wake(self.readers)
      case "Echo":
        if (!self.writeNow(data)) this.pause()
        return
        // Discard: dropped; Closed: nothing arrives after 'close'.
    }
  }

  private static onEnd(this: Tagged): void {
    const self = this[kDriven]
    const verify = self.verifyEnd
    if (verify !== undefined && verify.transport.endWasReset(this, verify.ends) === true) {
      return self.fail(self.error({ reason: "Reset", peer: self.peer, code: "ECONNRESET" }))
    }
    self.fin = true
    // Node emits 'end' only once every byte before the FIN was delivered: all of it is written.
    if (self.consumer._tag === "Echo") this.end()
    wake(self.readers)
  }

  private static onDrain(this: Tagged): void {
    const self = this[kDriven]
    if (self.consumer._tag === "Echo" && !self.fin) this.resume()
    self.wroteOut()
  }

  private static onFinish(this: Tagged): void {
    this[kDriven].wroteOut()
  }

  private static onClose(this: Tagged): void {
    const self = this[kDriven]
    const consumer = self.consumer
    // What a reader had not taken yet stays for it; the common close, with nothing held, allocates nothing.
    self.consumer = consumer._tag === "Pull" && consumer.buffered.length > 0
      ? { _tag: "Closed", buffered: consumer.buffered, bytes: consumer.bytes }
      : closed
    wake(self.readers)
    // An echo still running ends here: with the connection's failure, or as a broken pipe.
    if (consumer._tag === "Echo") self.echoSettled(consumer)
    wake(self.writers)
  }

  private static onError(this: Tagged, error: Error): void {
    const self = this[kDriven]
    const code = errno.errnoCode(error)
    const syscall = errno.errnoSyscall(error)
    self.fail(self.error({
      reason: errno.connectionReason(code),
      peer: self.peer,
      ...(code === undefined ? {} : { code }),
      ...(syscall === undefined ? {} : { syscall }),
      cause: error
    }))
  }

  private static onIdle(this: Tagged): void {
    const self = this[kDriven]
    const error = self.error({ reason: "Timeout", peer: self.peer })
    // Recorded and decided before any waiter wakes: on Effect 4 a woken fiber runs at once, inside
    // this callback, and would act on the timeout before its owner heard of it.
    self.failure ??= error
    // Stryker disable next-line StringLiteral: equivalent (Socket.close tells "reset" from anything else)
    if (self.owner === undefined) Socket.close(this, "close")
    else self.owner.idle()
    self.fail(error)
  }

  private fail(error: ConnectionError): void {
    this.failure ??= error
    wake(this.readers)
    this.wroteOut()
  }

  // The write side moved ('drain', 'finish', 'close', a failure): the echo may be done, and the
  // writers check again.
  private wroteOut(): void {
    if (this.consumer._tag === "Echo") this.echoSettled(this.consumer)
    wake(this.writers)
  }

  // Every error this connection raises is known to be its own.
  private error(fields: ConstructorParameters<typeof ConnectionError>[0]): ConnectionError {
    const error = new ConnectionError(fields)
    origins.set(error, this)
    return error
  }

  get peer(): string {
    return this.peerName ??= this.socket.remoteAddress === undefined
      ? "a peer gone before its address was read"
      : `${this.socket.remoteAddress}:${this.socket.remotePort}`
  }

  // --- The fiber's side.

  // What went wrong, if anything. A socket closed without an error (both FINs, or closed from
  // this side) fails further writes too: Node drops writes to a destroyed socket without an event.
  // The error is built only when asked for: closing is the normal end and must stay cheap.
  private failed(): ConnectionError | undefined {
    if (this.failure === undefined && this.consumer._tag === "Closed") {
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

  // Parks the fiber on `waiters` until woken, then runs `then` (which checks again). The wake-up
  // carries no result: one left behind by an interrupted fiber must not take anything with it.
  private park<A, E, R>(waiters: Array<() => void>, then: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return callback<A, E, R>((resume) => {
      if (waiters.length >= wakeAllAt) wake(waiters)
      waiters.push(() => resume(then))
    })
  }

  /** Input arrives again: the consumer took what was held, or started waiting for more. */
  private flow(): void {
    if (this.socket.isPaused()) this.socket.resume()
  }

  get read(): Read<ConnectionError> {
    return this.pulled ??= Effect.suspend(() => this.pull())
  }

  private pull(): Read<ConnectionError> {
    const consumer = this.consumer
    if (holds(consumer) && consumer.buffered.length > 0) {
      const chunk = readBuffers(consumer.buffered)
      consumer.buffered = []
      consumer.bytes = 0
      this.flow()
      return Effect.succeed(chunk)
    }
    // The peer's FIN comes before any later failure of the write side: input ended cleanly.
    if (this.fin) return readEnd
    const error = this.failed()
    if (error !== undefined) return readFail(error)
    // First pull of a paused socket, or the consumer caught up: let data flow.
    this.flow()
    return this.park(this.readers, this.read)
  }

  /** The next buffer held, in order, or `undefined`. Reading resumes once nothing is held. */
  private takeOne(): Uint8Array | undefined {
    const consumer = this.consumer
    if (!holds(consumer) || consumer.buffered.length === 0) return undefined
    const data = consumer.buffered.shift()!
    consumer.bytes -= data.length
    if (consumer.buffered.length === 0) this.flow()
    return data
  }

  run<E = never, R = never>(
    f: (data: Uint8Array) => Effect.Effect<unknown, E, R> | void,
    options?: InternalRunOptions
  ): Effect.Effect<void, E | ConnectionError, R> {
    const untilDrain = options?.untilDrain === true
    const until = options?.until
    // One step: every buffer held, in order, each after the effect for the one before completed;
    // then the end of input, or a wait for more.
    const step = (): Effect.Effect<void, E | ConnectionError, R> => {
      while (!(untilDrain && this.drainNoticed) && until?.() !== true) {
        const data = this.takeOne()
        if (data === undefined) {
          if (this.fin) return Effect.void
          const error = this.failed()
          if (error !== undefined) return Effect.fail(error)
          this.flow()
          return this.park(this.readers, next)
        }
        const result = f(data)
        if (Effect.isEffect(result)) return Effect.flatMap(result, step)
      }
      return Effect.void
    }
    const next = Effect.suspend(step)
    return next
  }

  // Built on first use: most handlers never ask, and a Stream is several objects per connection.
  get stream(): Stream.Stream<Uint8Array, ConnectionError> {
    return this.streamed ??= streamOf(this.read)
  }

  /** The drain notice came: a `run` asked to return at it does, between two buffers. */
  notifyDrain(): void {
    this.drainNoticed = true
    wake(this.readers)
  }

  /** Wakes a `run` waiting for input, to check its `until` again. */
  wakeRuns(): void {
    wake(this.readers)
  }

  private writeNow(data: Uint8Array): boolean {
    this.bytesOut += data.length
    this.owner?.sent(data.length)
    return this.socket.write(data)
  }

  // Waits until Node's write buffer is empty again, or the connection failed.
  private drained(): Effect.Effect<void, ConnectionError> {
    const error = this.failed()
    if (error !== undefined) return Effect.fail(error)
    if (!this.socket.writableNeedDrain) return Effect.void
    return this.park(this.writers, Effect.suspend(() => this.drained()))
  }

  // Handlers pass these around unbound (`Stream.runForEach(connection.write)`): bound on first
  // use, once, so that a connection the echo serves (which never asks) allocates neither.
  get write(): (data: Uint8Array) => Effect.Effect<void, ConnectionError> {
    return this.boundWrite ??= (data) =>
      Effect.suspend(() => {
        const error = this.writeFailed()
        if (error !== undefined) return Effect.fail(error)
        return this.writeNow(data) ? Effect.void : this.drained()
      })
  }

  get writeAll(): (data: Buffers) => Effect.Effect<void, ConnectionError> {
    return this.boundWriteAll ??= (data) => Effect.suspend(() => this.writeFrom(buffersArray(data), 0))
  }

  private writeFrom(buffers: ReadonlyArray<Uint8Array>, from: number): Effect.Effect<void, ConnectionError> {
    const error = this.writeFailed()
    if (error !== undefined) return Effect.fail(error)
    for (let i = from; i < buffers.length; i++) {
      if (!this.writeNow(buffers[i]!)) {
        return i === buffers.length - 1
          ? Effect.suspend(() => this.drained())
          : Effect.andThen(Effect.suspend(() => this.drained()), Effect.suspend(() => this.writeFrom(buffers, i + 1)))
      }
    }
    return Effect.void
  }

  private finishedWriting(): Effect.Effect<void, ConnectionError> {
    if (this.socket.writableFinished) return Effect.void
    const error = this.failed()
    if (error !== undefined) return Effect.fail(error)
    return this.park(this.writers, Effect.suspend(() => this.finishedWriting()))
  }

  get end(): Effect.Effect<void, ConnectionError> {
    return this.ending ??= Effect.suspend(() => {
      const socket = this.socket
      if (socket.writableFinished) return Effect.void
      const error = this.failed()
      if (error !== undefined) return Effect.fail(error)
      if (!socket.writableEnded) socket.end()
      return this.finishedWriting()
    })
  }

  get echo(): Effect.Effect<void, ConnectionError> {
    return this.echoing ??= callback<void, ConnectionError>((resume) => {
      this.echoThen({ echoed: (error) => resume(error === undefined ? Effect.void : Effect.fail(error)) })
      // Interrupted: the bytes wait for a reader again.
      return Effect.sync(() => {
        if (this.consumer._tag === "Echo") this.consumer = pull()
      })
    })
  }

  /**
   * The recipe's loop on Node's callbacks, with no fiber: what was read ahead goes back first, then
   * every byte as it arrives, reading paused while Node's write buffer is full; at the peer's FIN,
   * our FIN after the last byte. `done` is told once: when our FIN is out, or the connection
   * failed. Then the bytes are kept for a reader again.
   */
  echoThen(done: EchoDone): void {
    const previous = this.consumer
    const echo: Echo = { _tag: "Echo", done }
    if (this.failed() === undefined) {
      this.consumer = echo
      let full = false
      if (previous._tag === "Pull") {
        for (const data of previous.buffered) full = !this.writeNow(data) || full
      }
      if (this.fin) {
        if (!this.socket.writableEnded) this.socket.end()
      } else if (!full) this.socket.resume()
    }
    this.echoSettled(echo)
  }

  // Done when the FIN is out, or when the connection failed; any other wake-up (a 'drain') waits on.
  private echoSettled(echo: Echo): void {
    const finished = this.socket.writableFinished
    const error = finished ? undefined : this.failed()
    if (!finished && error === undefined) return
    if (this.consumer === echo) this.consumer = pull()
    echo.done.echoed(error)
  }

  /**
   * Reads and drops input until the peer's FIN, for at most `atMost`. Closing a socket with unread
   * input makes Linux send RST and throw away what it had not sent yet: a handler that answered
   * without reading everything would see its answer cut short, and the peer a clean-looking end.
   * The common case (the peer's FIN already read) costs no timer.
   */
  discardInput(atMost: Duration.Duration): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.fin || this.consumer._tag === "Closed") return Effect.void
      this.consumer = discard
      this.socket.resume()
      return Effect.asVoid(Effect.timeoutOption(this.inputEnded, atMost))
    })
  }

  private get inputEnded(): Effect.Effect<void> {
    return Effect.suspend(() =>
      this.fin || this.consumer._tag === "Closed" || this.failure !== undefined
        ? Effect.void
        : this.park(this.readers, this.inputEnded)
    )
  }

  /** Puts `data` back ahead of what was read: the next pull (or the echo) gets it first. */
  unread(data: Uint8Array): void {
    const consumer = this.consumer
    if (data.length === 0 || consumer._tag !== "Pull") return
    consumer.buffered.unshift(data)
    consumer.bytes += data.length
    wake(this.readers)
  }

  /** Names the peer: the client a proxy's header named, instead of the socket's own peer. */
  rename(peer: string): void {
    this.peerName = peer
  }

  /** Whether both FINs are done: ours handed to the kernel, the peer's seen (or the socket closed). */
  get finished(): boolean {
    return this.socket.writableFinished && (this.fin || this.consumer._tag === "Closed")
  }

  get stats(): Effect.Effect<Stats> {
    return Effect.sync((): Stats => ({
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      buffered: (holds(this.consumer) ? this.consumer.bytes : 0) + this.socket.readableLength +
        this.socket.writableLength
    }))
  }

  /** Closes the socket (see `socket.ts`), and returns once it is closed. */
  close(how: Socket.How): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.consumer._tag === "Closed") return Effect.void
      Socket.close(this.socket, how)
      return callback<void>((resume) => {
        if (this.consumer._tag === "Closed") return resume(Effect.void)
        this.socket.once("close", () => resume(Effect.void))
      })
    })
  }
}
