/**
 * The life of every connection of one server, in the order it happens: admission (a slot, or a
 * place in the queue), serving (a fiber, and a scope for a handler that wants one), completion
 * (our FIN, then reading to the peer's), the verdict and the release (the socket, the slot), and
 * the shutdown of them all under one deadline. Everything a connection holds is taken and given
 * back here, and nowhere else.
 */
import {
  callback,
  catchAllCause,
  deferredDone,
  deferredUnsafe,
  interruptFork,
  observe,
  runner,
  scopeUnsafe
} from "#line/runtime"
import type { CloseableScope, RootFiber, Runner } from "#line/runtime"
import { Cause, Context, Deferred, Duration, Effect, Exit, Option, Scope } from "effect"
import type * as Connection from "../Connection.js"
import type * as Listener from "../Listener.js"
import * as Metrics from "../Metrics.js"
import * as Driven from "./connection.js"
import * as Level from "./level.js"
import * as Log from "./log.js"
import { LogAggregator } from "./logAggregator.js"
import * as Outcome from "./outcome.js"
import * as Proxy from "./proxy.js"
import * as Socket from "./socket.js"
import * as Transport from "./transport.js"

/**
 * What the server decided, checked: the lifecycle applies it and decides nothing of its own but
 * the linger below.
 *
 * @internal
 */
export interface Policy {
  readonly maxConnections: number
  readonly maxPending: number
  readonly connection: Connection.Options
  /** How long a connection may wait for a slot (the idle timeout, when there is one). */
  readonly maxWait: Duration.Duration | undefined
  /** After shutdown begins, how long the server still accepts before it stops. */
  readonly drainDelay: Duration.Duration
  readonly shutdownTimeout: Duration.Duration
  readonly cleanupTimeout: Duration.Duration
  /** A PROXY protocol header is expected ahead of every connection, from these sources. */
  readonly proxy: Proxy.Policy | undefined
}

/**
 * How a connection is served. The built-in echo never throws and never needs a scope. A user's
 * handler is called inside its fiber (one that throws is a defect of its connection) and may ask
 * for `Scope`: it gets one per connection, closed once the connection is complete.
 *
 * @internal
 */
export type Handle<E, R> =
  /** The built-in echo, on Node's callbacks: no fiber of its own (see `start`). */
  | { readonly _tag: "Echo" }
  | { readonly _tag: "BuiltIn"; readonly run: (connection: Driven.Driven) => Effect.Effect<void, E> }
  | {
    readonly _tag: "User"
    readonly run: (connection: Driven.Driven) => Effect.Effect<void, E, R>
    /** Services beyond the server's own, read as each connection's fiber starts. */
    readonly services?: () => Context.Context<never> | undefined
  }

/**
 * A live connection, as the server reports it.
 *
 * @internal
 */
export interface Info extends Connection.Stats {
  readonly peer: string
}

/**
 * What the server reads of its connections while it runs.
 *
 * @internal
 */
export interface Live {
  readonly connections: Effect.Effect<ReadonlyArray<Info>>
  readonly pending: Effect.Effect<number>
  readonly ready: Effect.Effect<boolean>
  readonly suspend: Effect.Effect<void>
  readonly resume: Effect.Effect<void, Listener.ListenError>
  /** Sets `maxConnections` (checked by the caller); the listener's cap follows. */
  readonly setMaxConnections: (maxConnections: number) => Effect.Effect<void>
}

/** How long a connection whose handler is done keeps reading (and dropping) input, for its FIN. */
const linger = Duration.seconds(2)

/** How often, at most, every waiting socket is checked for a peer that reset (see `makeRoom`). */
const sweepEveryMillis = 100

/** How many waiting sockets a newcomer checks otherwise. */
const checksPerNewcomer = 4

const empty = Buffer.alloc(0)

/** The peer of a connection reset before its address was read, as `Connection.peer` names it. */
const goneBeforeRead = "a peer gone before its address was read"

const refusalMessage: Record<Proxy.Refusal, string> = {
  proxy_untrusted: "not a trusted proxy (trustedProxies)",
  proxy_malformed: "no PROXY protocol header, or a malformed one",
  proxy_timeout: "no whole PROXY protocol header within the header timeout"
}

/**
 * Serves every socket `listener` accepts, in the current scope, whose release is the shutdown:
 * stop accepting, tell the handlers (`Connection.draining`), give open connections
 * `shutdownTimeout` to finish, then cut off the rest (interrupt, close with a reset) and wait
 * `cleanupTimeout` at most for their finalizers. The release is registered before the first
 * connection can start, so none outlives the scope.
 *
 * @internal
 */
export const serve = <E, R>(
  listener: Listener.Listener,
  policy: Policy,
  handle: Handle<E, R>
): Effect.Effect<Live, never, Scope.Scope | Exclude<R, Scope.Scope>> =>
  Effect.gen(function*() {
    // Connection fibers are root fibers forked from Node's callbacks with the runtime of the fiber
    // that starts the server: its services, log settings and metric labels. Interruptible always,
    // even when the server starts in an uninterruptible region, or the deadline could not cut them.
    const fibers = (yield* runner<Exclude<R, Scope.Scope>>()) as Runner<never>
    const server = new Server(
      listener,
      policy,
      // Within the server, what a handler needs is its runtime's (and the scope it gets here).
      handle as Handle<unknown, Scope.Scope>,
      fibers,
      yield* Metrics.currentLabels,
      yield* Log.minimumLevel,
      // Its clock and timers: the real ones, or a simulation's.
      yield* Transport.CurrentTransport
    )
    // Runs after the shutdown below: its own drops and ends are in the last summaries.
    yield* Effect.addFinalizer(() => Effect.sync(() => server.logs.flush()))
    yield* Effect.addFinalizer(() => server.shutdown)
    // Connections start only now that the shutdown above owns them.
    yield* listener.handoff((socket) => server.admit(socket))
    return server
  })

/** A place in the queue for a slot: the socket, paused, and when it began to wait. */
interface Waiting {
  readonly socket: Listener.Socket
  readonly since: number
}

class Server implements Live {
  // Connections holding a slot, each with its fiber.
  private readonly live = new Set<Slot>()
  // Accepted, paused, waiting for a slot, oldest first: nothing is read from them until one frees.
  private readonly waiting: Array<Waiting> = []
  // One timer for the whole queue, armed for its oldest socket: they all wait the same time.
  private cancelWaitTimer: (() => void) | undefined = undefined
  private sweptAt = Number.NEGATIVE_INFINITY
  private cursor = 0
  private draining = false
  // Shutdown has begun, or accepting is suspended: a readiness probe should fail.
  private unready = false
  private suspended = false
  private admitting = false
  // The policy's, until changed while running.
  private maxConnections: number
  private onEmpty: (() => void) | undefined = undefined
  // Completes when shutdown begins: each connection's `draining`.
  private readonly drain = deferredUnsafe<void>()
  private readonly drainNotice = Deferred.await(this.drain)
  private readonly debug: boolean
  // Whether a record can name a connection's peer (its end is logged at `Info` or `Warning`).
  private readonly namesPeers: boolean
  // Drops and connection ends come in floods: the first of each kind is logged, the rest summed up.
  readonly logs: LogAggregator

  constructor(
    private readonly listener: Listener.Listener,
    private readonly policy: Policy,
    private readonly handle: Handle<unknown, Scope.Scope>,
    // Forks each connection's fiber with the services of the fiber that started the server: a
    // handler's fiber starts with them, and its own scope.
    private readonly fibers: Runner<never>,
    readonly labels: Metrics.Labels,
    private readonly minimumLevel: Level.Level,
    readonly transport: Transport.Transport
  ) {
    this.debug = Level.enabled("Debug", minimumLevel)
    this.namesPeers = Level.enabled("Warning", minimumLevel)
    this.maxConnections = policy.maxConnections
    this.logs = new LogAggregator({
      emit: (record, peer) => this.fibers.fork(record, peer),
      // Its window on the transport's clock: virtual in a simulation.
      schedule: (f, millis) => transport.schedule(millis, f)
    })
  }

  // --- Admission, on Node's 'connection' callback: a slot, a place in the queue, or dropped.

  // None comes once shutdown has begun: the drain notice and the listener's close are one
  // synchronous step, and a closed listener hands out nothing.
  admit(socket: Listener.Socket): void {
    // Behind a load balancer: only a trusted proxy may connect (its header is read when served).
    if (this.policy.proxy !== undefined) {
      if (socket.remoteAddress === undefined) return this.gone(socket)
      if (!Proxy.isTrusted(this.policy.proxy, socket.remoteAddress)) return this.refuse(socket, "proxy_untrusted")
    }
    if (this.live.size < this.maxConnections) return this.start(socket)
    if (this.waiting.length >= this.policy.maxPending && !this.makeRoom()) return this.drop(socket)
    this.waiting.push({ socket, since: this.transport.now() })
    this.armWaitTimer()
  }

  // Not re-entered: a connection whose handler ends at once is finished inside `start` (the fork
  // runs the fiber synchronously), and its `finish` comes back here; the loop below goes on
  // instead, or a long queue of such connections would recurse until the stack overflows.
  private admitWaiting(): void {
    if (this.admitting) return
    this.admitting = true
    try {
      while (!this.draining && this.live.size < this.maxConnections && this.waiting.length > 0) {
        const { socket } = this.waiting.shift()!
        this.start(socket)
      }
    } finally {
      this.admitting = false
    }
    if (this.waiting.length === 0) this.disarmWaitTimer()
  }

  /**
   * Nothing reads a waiting socket, so a peer that resets while it waits is not noticed and would
   * keep its place while live peers are dropped. A write of zero bytes sends nothing, but fails at
   * once on a connection the peer reset (`write(fd, NULL, 0) = -1 ECONNRESET`, seen with strace),
   * and Node marks the socket `errored` before `write` returns. So when the queue is full, a
   * newcomer first checks a few waiting sockets, the next ones in turn, and all of them at most
   * every 100 ms: a flood costs a few writes per connection dropped. Returns whether a place
   * freed. This is the only way a waiting socket leaves the queue early: a paused socket never
   * reads, so Node sees neither its peer's FIN nor its reset and never closes it by itself.
   */
  private makeRoom(): boolean {
    const now = this.transport.now()
    const all = now - this.sweptAt >= sweepEveryMillis
    if (all) this.sweptAt = now
    let checks = all ? this.waiting.length : Math.min(checksPerNewcomer, this.waiting.length)
    let freed = false
    while (checks-- > 0) {
      this.cursor %= this.waiting.length
      const { socket } = this.waiting[this.cursor]!
      socket.write(empty)
      if (socket.errored === null) {
        this.cursor++
        continue
      }
      this.waiting.splice(this.cursor, 1)
      Metrics.modifyUnsafe(Metrics.connectionsDropped, 1, this.labels.reason("gone"))
      Socket.close(socket, "reset")
      freed = true
      if (this.waiting.length === 0) break
    }
    return freed
  }

  // Beyond maxConnections + maxPending: closed at once, logged and counted, as the listener does
  // for what goes beyond even that (it holds one more, for the check above).
  private drop(socket: Listener.Socket): void {
    Metrics.modifyUnsafe(Metrics.connectionsDropped, 1, this.labels.reason("max_connections"))
    const peer = `${socket.remoteAddress}:${socket.remotePort}`
    this.logs.add("drop", peer, "Warning", "dropped connections (max_connections)", () =>
      Effect.logWarning(
        `dropped connection from ${peer}: ${this.live.size + this.waiting.length} connections held ` +
          `(${this.live.size} served, ${this.waiting.length} waiting)`
      ))
    Socket.close(socket, "reset")
  }

  // Refused before it was served: from a source that may not send a PROXY header, or (from
  // `serve`) with a header that did not come, or not whole, in time. Counted as dropped.
  private refuse(socket: Listener.Socket, refusal: Proxy.Refusal): void {
    Metrics.modifyUnsafe(Metrics.connectionsDropped, 1, this.labels.reason(refusal))
    const peer = `${socket.remoteAddress}:${socket.remotePort}`
    this.logs.add(
      refusal,
      peer,
      "Warning",
      `refused connections (${refusal})`,
      () => Effect.logWarning(`refused connection from ${peer}: ${refusalMessage[refusal]}`)
    )
    Socket.close(socket, "reset")
  }

  /**
   * Reset before its address could be read (the kernel no longer knows the peer: a load
   * balancer's TCP health check that closes with a reset does this): a peer's reset, counted and
   * logged as any connection's: not a source refused as untrusted, since its source is unknown.
   */
  private gone(socket: Listener.Socket): void {
    Metrics.modifyUnsafe(Metrics.connectionErrors, 1, this.labels.reason("Reset"))
    Metrics.modifyUnsafe(Metrics.connectionsReset, 1, this.labels.base)
    const kind = "connections ended (Reset)"
    // Stryker disable next-line ConditionalExpression: equivalent when true (Effect's logger drops a record below the minimum level; the check saves building it)
    if (Level.enabled("Info", this.minimumLevel)) {
      this.logs.add(
        kind,
        goneBeforeRead,
        "Info",
        kind,
        () => Effect.logInfo(`${goneBeforeRead} reset the connection`)
      )
    }
    // Stryker disable next-line StringLiteral: equivalent (the peer reset it: closing it sends nothing either way)
    Socket.close(socket, "reset")
  }

  // With a maximum wait (the idle timeout), a socket that waited that long is dropped: nothing is
  // read while it waits, so this bounds the wait for a slot, not idleness.
  private armWaitTimer(): void {
    const maxWait = this.policy.maxWait
    const oldest = this.waiting[0]
    // Already armed: for the oldest, which is older than any newcomer.
    if (maxWait === undefined || oldest === undefined || this.cancelWaitTimer !== undefined) return
    // Whole milliseconds: Node keeps one timer list per distinct delay.
    const delay = Math.max(0, Math.ceil(oldest.since + Duration.toMillis(maxWait) - this.transport.now()))
    this.cancelWaitTimer = this.transport.schedule(delay, () => this.expireWaiting())
  }

  private disarmWaitTimer(): void {
    if (this.cancelWaitTimer === undefined) return
    this.cancelWaitTimer()
    this.cancelWaitTimer = undefined
  }

  private expireWaiting(): void {
    this.cancelWaitTimer = undefined
    const deadline = this.transport.now() - Duration.toMillis(this.policy.maxWait!)
    while (this.waiting.length > 0 && this.waiting[0]!.since <= deadline) {
      const { socket } = this.waiting.shift()!
      Metrics.modifyUnsafe(Metrics.connectionsDropped, 1, this.labels.reason("wait_timeout"))
      Socket.close(socket, "reset")
    }
    this.armWaitTimer()
  }

  // --- Serving: a slot, a connection, a fiber. Nothing here can throw or suspend: a connection
  // costs one fiber and no queue hop, and the observer releases everything however it ends.

  private start(socket: Listener.Socket): void {
    const slot = new Slot(this, socket)
    slot.connection = Driven.drive(socket, this.policy.connection, slot, this.drainNotice)
    this.live.add(slot)
    Metrics.modifyUnsafe(Metrics.connectionsActive, 1, this.labels.base)
    // The built-in echo needs no fiber: the bytes move on Node's callbacks, and the connection
    // tells its slot when it is done (`Slot.echoed`, then `finish`). What guarantees its release
    // is the same as for a fiber: the slot is in `live`, which the server's scope owns; the
    // shutdown cuts what is still there at the deadline (closing its socket ends its echo), and
    // the idle timeout cuts it the same way.
    if (this.handle._tag === "Echo" && this.policy.proxy === undefined) {
      // Named now, while the socket is open, if a record could name it: a peer that resets later
      // is still named in it. At `Error` and above no record names an echo's peer, and the
      // address (a getpeername) is read only if something asks.
      if (this.namesPeers) void slot.connection.peer
      return slot.connection.echoThen(slot)
    }
    // A user's handler gets a scope of its own in its fiber's first context, made without a fiber:
    // `Effect.scoped` would provide it (and restore the context after) around the handler.
    const handle = this.handle
    const fiber = this.fibers.fork(
      this.serve(slot),
      slot.connection.peer,
      handle._tag === "User" ? this.userContext(handle, slot.scope = scopeUnsafe()) : undefined
    )
    slot.fiber = fiber
    observe(fiber, (exit) => this.finish(slot, exit))
  }

  // A user's handler's services: the server's, those the handle adds (merged once for each set
  // it gives), and its own scope.
  private userContext(
    handle: Extract<Handle<unknown, Scope.Scope>, { _tag: "User" }>,
    scope: CloseableScope
  ): Context.Context<never> {
    const services = handle.services?.()
    if (services !== this.merged?.services) {
      this.merged = services === undefined
        ? undefined
        : { services, context: Context.merge(this.fibers.context, services) }
    }
    return Context.add(this.merged?.context ?? this.fibers.context, Scope.Scope, scope)
  }
  private merged: { readonly services: Context.Context<never>; readonly context: Context.Context<never> } | undefined =
    undefined

  // The handler, then completion. A user's handler is called inside the fiber, and gets a scope of
  // its own, closed once the connection is complete (or cut off).
  private serve(slot: Slot): Effect.Effect<void> {
    const connection = slot.connection
    const handle = this.handle
    const judge = (cause: Cause.Cause<unknown>) => this.judge(slot, cause)
    const served = handle._tag === "User"
      ? Effect.onExit(
        catchAllCause(
          // Its Scope is in the fiber's first context (see `start`), where the types cannot see it.
          Effect.andThen(Effect.suspend(() => handle.run(connection) as Effect.Effect<void, unknown>), complete(slot)),
          judge
        ),
        (exit) => Scope.close(slot.scope!, exit)
      )
      : catchAllCause(
        Effect.andThen(handle._tag === "Echo" ? connection.echo : handle.run(connection), complete(slot)),
        judge
      )
    const proxy = this.policy.proxy
    if (proxy === undefined) return served
    // Behind a load balancer: its header first. The client it names is the connection's peer, in
    // every record of the connection; a header that does not come, or not whole, in time refuses it.
    return Effect.matchEffect(Proxy.read(connection, proxy), {
      onFailure: (failure) =>
        Effect.sync(() => {
          // A peer that reset (or idled out) while its header was awaited ended as any connection does.
          slot.verdict = typeof failure === "string"
            ? Outcome.refused(failure, connection.peer, refusalMessage[failure])
            : Outcome.classify(Cause.fail(failure), connection)
        }),
      onSuccess: (client) => {
        if (client === undefined) return served
        connection.rename(client)
        return Effect.annotateLogs(served, "peer", client)
      }
    })
  }

  /**
   * A handler that failed is judged at once, and its socket closed at once unless the verdict is to
   * complete: a peer's fault still completes normally, so that what the handler said in-band
   * arrives; a bug is reset now, before the handler's scope closes, so that a finalizer waiting on
   * the socket is woken and an idle timeout meanwhile cannot turn the reset into a FIN. A
   * connection already cut off is judged by its cut.
   */
  judge(slot: Slot, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    if (slot.cut !== undefined) return Effect.void
    const verdict = slot.verdict = Outcome.classify(cause, slot.connection)
    if (verdict.release === "complete") return Effect.ignore(complete(slot))
    Socket.close(slot.socket, verdict.release)
    return Effect.void
  }

  // --- The end: one verdict, applied in one place, however the fiber ended.

  /** The fiberless echo of `slot` ended: as a fiber that succeeded, or failed with `error`. */
  echoed(slot: Slot, error: Connection.ConnectionError | undefined): void {
    this.finish(slot, error === undefined ? Exit.void : Exit.fail(error))
  }

  private finish(slot: Slot, exit: Exit.Exit<void, unknown>): void {
    // The handler's own end, judged before any cut, stands; a cut-off connection is judged by the
    // cut, whatever its handler did next (a failed write, an `orDie`: they followed from it); a
    // fiber that failed by itself (a finalizer of the handler's scope died) by that cause.
    const verdict = slot.verdict ??
      (slot.cut !== undefined
        ? Outcome.cut(slot.cut, slot.connection.peer)
        : Exit.isFailure(exit)
        ? Outcome.classify(exit.cause, slot.connection)
        : Outcome.normal)
    const labels = this.labels
    if (verdict.reason !== undefined) Metrics.modifyUnsafe(Metrics.connectionErrors, 1, labels.reason(verdict.reason))
    if (verdict.dropped !== undefined) {
      Metrics.modifyUnsafe(Metrics.connectionsDropped, 1, labels.reason(verdict.dropped))
    }
    if (verdict.peerReset) Metrics.modifyUnsafe(Metrics.connectionsReset, 1, labels.base)
    if (Level.enabled(verdict.level, this.minimumLevel)) {
      const { cause, dropped, level, message, reason } = verdict
      const kind = dropped === undefined ? `connections ended (${reason})` : `refused connections (${dropped})`
      this.logs.add(
        kind,
        slot.connection.peer,
        level,
        kind,
        () => Log.logAt(level, message, cause)
      )
    }
    // Stryker disable next-line ConditionalExpression: equivalent when true (Effect's logger drops a record below the minimum level; the check saves building it)
    if (this.debug) this.log(slot.connection.peer, closedRecord(slot))
    Socket.close(slot.socket, verdict.release === "reset" ? "reset" : "close")
    this.live.delete(slot)
    Metrics.modifyUnsafe(Metrics.connectionsActive, -1, labels.base)
    Metrics.updateUnsafe(Metrics.connectionDuration, (this.transport.now() - slot.started) / 1000, labels.base)
    if (this.live.size === 0) this.onEmpty?.()
    this.admitWaiting()
  }

  // A log record for one connection, from Node's callbacks: a fiber of the server's runtime that
  // logs and ends at once, with the peer annotated as in the connection's own fiber.
  private log(peer: string, record: Effect.Effect<void>): void {
    this.fibers.fork(record, peer)
  }

  /**
   * Ends a connection its handler has not ended: the fiber is interrupted, and the socket reset
   * now, not when the fiber is done, so that a finalizer that waits on the socket (an `end` the
   * peer never acknowledges) is woken instead of holding the shutdown forever. An idle timeout
   * while the connection completes a whole answer (our FIN sent, waiting for the peer's) cuts
   * nothing off: the socket is only closed.
   */
  cutOff(slot: Slot, cut: Outcome.Cut): void {
    // Stryker disable next-line ConditionalExpression: equivalent when false (a second cut finds the fiber interrupted and the socket closed; the shutdown cuts only those not cut yet)
    if (slot.cut !== undefined) return
    if (cut === "Timeout" && slot.answered) return Socket.close(slot.socket, "close")
    slot.cut = cut
    if (slot.fiber !== undefined) interruptFork(slot.fiber)
    Socket.close(slot.socket, "reset")
  }

  // --- Shutdown: one deadline for every connection, then a bounded wait for their cleanup.

  get shutdown(): Effect.Effect<void> {
    // Effect.gen binds `this` differently on Effect 3 and Effect 4: the generator names the server.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const server = this
    return Effect.gen(function*() {
      // Not ready from now on; still accepting for the drain delay, the time a load balancer
      // takes to stop sending connections once its readiness probe fails.
      server.unready = true
      const { drainDelay } = server.policy
      if (Duration.toMillis(drainDelay) > 0 && !server.suspended) {
        yield* Effect.logInfo(`shutting down: accepting for ${Duration.format(drainDelay)} more (drain delay)`)
        yield* Effect.sleep(drainDelay)
      }
      server.draining = true
      deferredDone(server.drain, Effect.void)
      for (const slot of server.live) slot.connection.notifyDrain()
      // Stop accepting: the port is free from here on.
      yield* server.listener.close
      Metrics.modifyUnsafe(Metrics.connectionsDropped, server.waiting.length, server.labels.reason("shutdown"))
      for (const { socket } of server.waiting.splice(0)) Socket.close(socket, "reset")
      server.disarmWaitTimer()
      if (server.live.size === 0) return
      const { cleanupTimeout, shutdownTimeout } = server.policy
      yield* Effect.logInfo(
        `shutting down: waiting up to ${Duration.format(shutdownTimeout)} for ${server.live.size} connection(s)`
      )
      // Finalizers are uninterruptible; the waits must not be, or their timeouts could not end them.
      if (Option.isSome(yield* Effect.timeoutOption(Effect.interruptible(server.allClosed), shutdownTimeout))) return
      // Those an idle timeout cut off already are not cut again, nor named here.
      const cut = Array.from(server.live).filter((slot) => slot.cut === undefined)
      yield* Effect.logWarning(`shutdown deadline passed: cutting off ${cut.length} connection(s)`)
      // Stryker disable next-line StringLiteral: equivalent (any cut but "Timeout" is judged as the deadline's)
      for (const slot of cut) server.cutOff(slot, "ShutdownDeadline")
      const cleaned = yield* Effect.timeoutOption(Effect.interruptible(server.allClosed), cleanupTimeout)
      // Name a few peers, not ten thousand: one log record must stay readable.
      const peers = cut.map((slot) => slot.connection.peer)
      const named = peers.slice(0, 10).join(", ") + (peers.length > 10 ? `, and ${peers.length - 10} more` : "")
      yield* Effect.logInfo(`closed ${cut.length} connection(s) at the shutdown deadline: ${named}`)
      if (Option.isNone(cleaned)) {
        yield* Effect.logError(
          `${server.live.size} handler(s) still running ${Duration.format(cleanupTimeout)} after the shutdown ` +
            `deadline, in finalizers that do not end: their sockets are closed, their fibers left behind`
        )
      }
    })
  }

  private get allClosed(): Effect.Effect<void> {
    return callback<void>((resume) => {
      if (this.live.size === 0) return resume(Effect.void)
      this.onEmpty = () => resume(Effect.void)
      // Stryker disable next-line BlockStatement: equivalent (a resume after the wait was interrupted is ignored, and the next wait replaces it)
      return Effect.sync(() => {
        this.onEmpty = undefined
      })
    })
  }

  get connections(): Effect.Effect<ReadonlyArray<Info>> {
    return Effect.suspend(() =>
      Effect.forEach(
        Array.from(this.live),
        ({ connection }) => Effect.map(connection.stats, (stats): Info => ({ peer: connection.peer, ...stats }))
      )
    )
  }

  get pending(): Effect.Effect<number> {
    return Effect.sync(() => this.waiting.length)
  }

  get ready(): Effect.Effect<boolean> {
    return Effect.sync(() => !this.unready && !this.suspended)
  }

  get suspend(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.unready || this.suspended) return Effect.void
      this.suspended = true
      return this.listener.pause
    })
  }

  get resume(): Effect.Effect<void, Listener.ListenError> {
    return Effect.suspend(() => {
      // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent when false (the listener's own resume does nothing once closed or while listening; ready stays false once unready)
      if (this.unready || !this.suspended) return Effect.void
      return Effect.map(this.listener.resume, () => {
        this.suspended = false
      })
    })
  }

  setMaxConnections(maxConnections: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.maxConnections = maxConnections
      return Effect.andThen(
        this.listener.setMaxAccepted(maxConnections + this.policy.maxPending + 1),
        Effect.sync(() => this.admitWaiting())
      )
    })
  }
}

/**
 * One connection holding a slot: its socket, the connection on it, the fiber serving it, and
 * what ended it. It is also the connection's owner: the bytes it counts feed the server's metrics,
 * and its idle timeout ends the connection through the server.
 */
class Slot implements Driven.Owner, Driven.EchoDone {
  connection!: Driven.Driven
  fiber: RootFiber<void> | undefined = undefined
  // A user's handler's own scope, closed when its fiber ends.
  scope: CloseableScope | undefined = undefined
  // Set by the fiber when its handler failed.
  verdict: Outcome.Verdict | undefined = undefined
  // Set when the server ended the connection itself.
  cut: Outcome.Cut | undefined = undefined
  // The handler's answer is whole (it returned, or failed with a peer fault): completing it.
  answered = false
  readonly started: number

  constructor(readonly server: Server, readonly socket: Listener.Socket) {
    this.started = server.transport.now()
  }

  received(bytes: number): void {
    Metrics.updateUnsafe(Metrics.bytesReceived, bytes, this.server.labels.base)
  }

  sent(bytes: number): void {
    Metrics.updateUnsafe(Metrics.bytesSent, bytes, this.server.labels.base)
  }

  idle(): void {
    this.server.cutOff(this, "Timeout")
  }

  echoed(error: Connection.ConnectionError | undefined): void {
    this.server.echoed(this, error)
  }
}

/**
 * What the server does after a handler: half-close (if the handler did not), then read and drop
 * input until the peer's FIN, for a while: closing with unread input would make Linux reset the
 * connection and drop the end of the answer. The echo's usual end (both FINs done) costs nothing.
 */
const complete = (slot: Slot): Effect.Effect<void, Connection.ConnectionError> =>
  Effect.suspend(() => {
    slot.answered = true
    const connection = slot.connection
    return connection.finished ? Effect.void : Effect.andThen(connection.end, connection.discardInput(linger))
  })

/** The debug record of a connection that closed, with its counters. */
const closedRecord = (slot: Slot): Effect.Effect<void> =>
  Effect.flatMap(slot.connection.stats, (stats) =>
    Effect.logDebug("connection closed").pipe(Effect.annotateLogs({
      bytesIn: stats.bytesIn,
      bytesOut: stats.bytesOut,
      durationMs: Math.round(slot.server.transport.now() - slot.started)
    })))
