/**
 * One run of a scenario against a server, the same on loopback and on the simulated network: the
 * server started on a transport the run watches (to know when its listener accepted a peer), the
 * handler wrapped to see its life (started, told to drain, ended, finalized), every applicable
 * operation acted in order (see `commands.ts`), then the shutdown and the checks of its end. What
 * differs between the two backends is a {@link Harness}: how leaks are counted, and how exact the
 * clock is.
 */
import { defects, isInterrupted, isInterruptedOnly } from "#line/cause"
import type { FiberTracker } from "#line/kit"
import { extendScope, trackFibers } from "#line/kit"
import { afterTheEvent, callback, catchAllCause, deferredUnsafe, forkDetach } from "#line/runtime"
import { decodeDuration, type DurationInput } from "#line/types"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Scope } from "effect"
import * as Server from "../../Server.js"
import type { Holdings, Outcome, Peer, Protocol, RunOptions, Scenario, Target } from "../../TestKit.js"
import * as ExitReset from "../exitReset.js"
import * as Transport from "../transport.js"
import type { Run, RunPeer, Timing } from "./commands.js"
import * as Commands from "./commands.js"
import * as Model from "./model.js"
import * as Peers from "./peers.js"
import { echo } from "./protocol.js"
import type { ShutdownViolation } from "./verdict.js"
import { violation } from "./verdict.js"

/**
 * What differs between the backends.
 *
 * @internal
 */
export interface Harness {
  readonly holdings: Effect.Effect<Holdings>
  readonly expectNoLeaks: (before: Holdings) => Effect.Effect<void, Error>
  readonly expectPortFree: (port: number) => Effect.Effect<void, Error>
  /** Runs the server's descriptors out, or gives them back; absent where that cannot be done. */
  readonly exhaust: ((exhausted: boolean) => Effect.Effect<void>) | undefined
  /** Server-side sockets still open, where they can be counted at once (no asynchronous close). */
  readonly serverSocketsOpen: (() => number) | undefined
  /** The default of `deadlineMargin`. */
  readonly deadlineMargin: DurationInput
  /**
   * How the drain notice is checked: `exact` on a clock where "after" is exact (every handler
   * still running after the notice was due has it); `cut` where it is not (every handler the
   * deadline cut off had it).
   */
  readonly notice: "exact" | "cut"
}

/**
 * What the run saw of one handler's life.
 *
 * @internal
 */
export interface HandlerRecord {
  readonly peer: string
  readonly startedAt: number
  endedAt: number | undefined
  exit: Exit.Exit<void, unknown> | undefined
  notifiedAt: number | undefined
  finalized: number
}

/**
 * A handler as the run serves it: the user's, with its start, its drain notice, its end and its
 * scope's finalizers recorded. The connection it gets is the server's own, unchanged.
 */
class Handlers {
  readonly records: Array<HandlerRecord> = []
  constructor(private readonly now: () => number) {}

  wrap<E, R>(handler: Server.Handler<E, R>): Server.Handler<E, R | Scope.Scope> {
    return (connection) =>
      Effect.suspend(() => {
        const record: HandlerRecord = {
          peer: connection.peer,
          startedAt: this.now(),
          endedAt: undefined,
          exit: undefined,
          notifiedAt: undefined,
          finalized: 0
        }
        this.records.push(record)
        const noted = Effect.sync(() => {
          record.notifiedAt ??= this.now()
        })
        return Effect.addFinalizer(() => Effect.sync(() => record.finalized++)).pipe(
          // Registered before the handler runs: the notice wakes it before any wait of the handler's own.
          Effect.andThen(Effect.forkScoped(Effect.andThen(connection.draining, noted))),
          Effect.andThen(Effect.onExit(handler(connection), (exit) =>
            Effect.sync(() => {
              record.endedAt = this.now()
              record.exit = exit
            })))
        )
      })
  }

  of(peer: Peer): HandlerRecord | undefined {
    const name = `${peer.socket.localAddress ?? "127.0.0.1"}:${peer.socket.localPort}`
    return this.records.find((record) => record.peer === name)
  }
}

const died = (record: HandlerRecord): string | undefined => {
  if (record.exit === undefined || Exit.isSuccess(record.exit)) return undefined
  const found = defects(record.exit.cause)
  if (found.length === 0) return undefined
  return Cause.pretty(Cause.die(found[0])).split("\n")[0]
}

/** Tracks the ports (the peers' own) a watched server's listener accepted, and wakes those waiting for one. */
class Accepted {
  private readonly ports = new Set<number>()
  private readonly waiters = new Map<number, () => void>()

  watch(transport: Transport.Transport): Transport.Transport {
    return {
      ...transport,
      createServer: (options) =>
        transport.createServer(options).on("connection", (socket) => {
          const port = socket.remotePort
          if (port === undefined) return
          this.ports.add(port)
          this.waiters.get(port)?.()
        })
    }
  }

  /**
   * Waits until the listener accepted `peer`, or its connection ended (then the verdict on its end
   * says why), and the server's own listeners of that event ran.
   */
  wait(peer: Peer): Effect.Effect<void> {
    return afterTheEvent(callback<void>((resume) => {
      const port = peer.socket.localPort
      if (port === undefined || this.ports.has(port) || peer.endedAt() !== undefined) return resume(Effect.void)
      const done = () => resume(Effect.void)
      this.waiters.set(port, done)
      peer.socket.once("close", done)
      peer.socket.once("end", done)
      return Effect.sync(() => {
        this.waiters.delete(port)
        peer.socket.off("close", done)
        peer.socket.off("end", done)
      })
    }))
  }
}

const millis = (input: DurationInput | undefined, fallback: DurationInput) =>
  Duration.toMillis(decodeDuration(input ?? fallback))

const timingOf = (options: RunOptions, harness: Harness): Timing => ({
  shutdownTimeout: millis(options.shutdownTimeout, "400 millis"),
  cleanupTimeout: millis(options.cleanupTimeout, Server.defaults.cleanupTimeout),
  drainDelay: millis(options.drainDelay, Server.defaults.drainDelay),
  margin: millis(options.margin, "10 seconds"),
  deadlineMargin: millis(options.deadlineMargin, harness.deadlineMargin)
})

/** What `ServerDefect` makes the server's fiber die of. */
class ServerDefect extends Error {
  constructor() {
    super("a defect in the fiber that holds the server (the run's ServerDefect)")
  }
}

/**
 * The server's life, as the run drives it. The server runs in a fiber of its own, which started it
 * in its scope and holds it: a shutdown is that fiber returning (its scope closes), a
 * `ServerDefect` that fiber dying (its scope closes with the defect), as Effect closes the scope
 * of any fiber that ends. Either is begun once, in the background; `force` is the process's way
 * out at once, before it. Timed on the transport's clock, and awaited with the deadline it must keep.
 */
class ServerLife {
  private state:
    | { readonly _tag: "Serving" }
    // Stryker disable next-line ObjectLiteral,StringLiteral: equivalent (only "Begun" is ever asked for)
    | { readonly _tag: "Begun"; readonly at: number; returnedAt?: number } = { _tag: "Serving" }
  private readonly stop = deferredUnsafe<void>()
  private fiber: Fiber.Fiber<void, ShutdownViolation> | undefined = undefined
  private forced: number | undefined = undefined

  constructor(
    /** The transport the server runs on: the run's own, which no other server shares. */
    private readonly transport: Transport.Transport,
    private readonly timing: Timing,
    private readonly serverSocketsOpen: Harness["serverSocketsOpen"]
  ) {}

  /** Forks the server's fiber, which starts `server` in its scope and holds it: the port it listens on. */
  start<R>(
    server: Effect.Effect<number, ShutdownViolation, R | Scope.Scope>
  ): Effect.Effect<number, ShutdownViolation, Exclude<R, Scope.Scope>> {
    // A method's generator, as `Effect.gen` binds `this` differently on each Effect line.
    return Effect.gen(() => this.starting(server))
  }

  private *starting<R>(server: Effect.Effect<number, ShutdownViolation, R | Scope.Scope>) {
    const port = yield* Deferred.make<number, ShutdownViolation>()
    const held = Effect.scoped(
      Effect.andThen(Effect.flatMap(server, (bound) => Deferred.succeed(port, bound)), Deferred.await(this.stop))
    )
    this.fiber = yield* forkDetach(Effect.onExit(held, (exit) =>
      Effect.suspend(() => {
        // Stryker disable next-line ConditionalExpression: equivalent (a server that never began its shutdown has no return to time)
        if (this.state._tag === "Begun") this.state.returnedAt = this.transport.now()
        // A server that did not start: its failure is the run's.
        return Exit.isFailure(exit) ? Deferred.failCause(port, exit.cause) : Effect.void
      })))
    return yield* Deferred.await(port)
  }

  get startedAt(): number | undefined {
    // Stryker disable next-line ConditionalExpression: equivalent (a state still serving has no `at`)
    return this.state._tag === "Begun" ? this.state.at : undefined
  }

  get forcedAt(): number | undefined {
    return this.forced
  }

  /** From its start to its return; 0 while it has not returned. */
  get millis(): number {
    // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent (read only once the shutdown returned)
    return this.state._tag === "Begun" && this.state.returnedAt !== undefined
      ? this.state.returnedAt - this.state.at
      : 0
  }

  /** Ends the server's fiber with `exit`, unless its shutdown began already. */
  private end(exit: Exit.Exit<void>): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.state._tag === "Begun") return Effect.void
      this.state = { _tag: "Begun", at: this.transport.now() }
      return Effect.asVoid(Deferred.done(this.stop, exit))
    })
  }

  readonly begin: Effect.Effect<void> = this.end(Exit.void)

  readonly defect: Effect.Effect<void> = Effect.suspend(() => this.end(Exit.die(new ServerDefect())))

  /**
   * What the process does on its way out at once (internal/exitReset.ts), for this server's
   * connections only: the others of this process go on. The process would be gone; this one goes
   * on, so the shutdown begins (if it had not), in its place.
   */
  readonly force: Effect.Effect<void> = Effect.suspend(() => {
    this.forced ??= this.transport.now()
    ExitReset.resetOn(this.transport)
    return this.begin
  })

  /**
   * At the run's end, whatever failed: a server still serving is shut down and awaited; a shutdown
   * that began is left to end as it will (its hang may be what failed).
   */
  readonly release: Effect.Effect<void> = Effect.suspend(() => {
    const fiber = this.fiber
    if (this.state._tag === "Begun" || fiber === undefined) return Effect.void
    return Effect.andThen(this.begin, Effect.asVoid(Fiber.await(fiber)))
  })

  /** Begins it if need be, waits for its return, and checks it returned by its deadline, leaving no server socket. */
  readonly await: Effect.Effect<void, ShutdownViolation> = Effect.andThen(
    this.begin,
    Effect.suspend(() => {
      const deadline = Commands.deadline(this.timing)
      const limit = deadline + this.timing.deadlineMargin
      return Commands.timed(
        Fiber.await(this.fiber!),
        limit + this.timing.margin,
        "Hang",
        `shutdown did not return within its deadline of ${deadline} ms plus ${
          this.timing.deadlineMargin + this.timing.margin
        } ms`
      ).pipe(Effect.flatMap(() => {
        if (this.millis > limit) {
          return Effect.fail(violation(
            "Late",
            `shutdown returned ${
              Math.round(this.millis)
            } ms after it began, past its deadline of ${deadline} ms plus ${this.timing.deadlineMargin} ms`
          ))
        }
        const open = this.serverSocketsOpen?.() ?? 0
        return open > 0
          ? Effect.fail(violation("Leak", `${open} server socket(s) still open when shutdown returned`))
          : Effect.void
      }))
    })
  )
}

/**
 * The target, started with its fibers tracked by `fibers`, on `transport` (one whose listeners
 * `accepted` watches): the port it listens on. In the scope of the fiber that runs it.
 */
const start = <E, R>(
  target: Target<E, R>,
  options: Server.Options,
  handlers: Handlers | undefined,
  transport: Transport.Transport,
  fibers: FiberTracker
): Effect.Effect<number, ShutdownViolation, Scope.Scope | Exclude<R, Scope.Scope>> => {
  const started: Effect.Effect<number, unknown, Scope.Scope | Exclude<R, Scope.Scope>> = target.serve !== undefined
    ? Effect.map(target.serve(options), (served) => served.port) as Effect.Effect<
      number,
      unknown,
      Scope.Scope | Exclude<R, Scope.Scope>
    >
    : Effect.map(
      Server.make(options, handlers === undefined ? undefined : handlers.wrap(target.handler!)),
      (server) => server.address.port
    )
  return started.pipe(
    Effect.provideService(Transport.CurrentTransport, transport),
    fibers.track,
    catchAllCause((cause) =>
      Effect.fail(violation("NotStarted", `the server did not start: ${Cause.pretty(cause).split("\n")[0]}`))
    )
  )
}

/** What the run knows of how a handler ended, to add to a violation about its peer. */
const fate = (record: HandlerRecord | undefined): string => {
  if (record === undefined) return ""
  const death = died(record)
  if (death !== undefined) return `, whose handler died: ${death}`
  if (record.exit !== undefined && Exit.isFailure(record.exit) && !isInterruptedOnly(record.exit.cause)) {
    return `, whose handler failed: ${Cause.pretty(record.exit.cause).split("\n")[0]}`
  }
  return ""
}

/** Any handler's death, to explain an end the run cannot tie to one handler. */
const anyDeath = (handlers: Handlers | undefined): string => {
  for (const record of handlers?.records ?? []) {
    const death = died(record)
    if (death !== undefined) return ` (the handler of ${record.peer} died: ${death})`
  }
  return ""
}

/** The real side of a run (see `commands.ts`): its peers, on `port`, in `peersScope`. */
const makeRun = (parts: {
  readonly harness: Harness
  readonly port: number
  readonly protocol: Protocol | undefined
  readonly timing: Timing
  readonly now: () => number
  readonly accepted: Accepted
  readonly handlers: Handlers | undefined
  readonly life: ServerLife
  readonly peersScope: Scope.Scope
}): Run => {
  const { accepted, handlers, harness, life, now, peersScope, port, protocol, timing } = parts
  const peers: Array<RunPeer> = []
  const connect = extendScope(Peers.connect(port), peersScope)
  return {
    peers,
    protocol,
    timing,
    now,
    open: (refused) =>
      Effect.gen(function*() {
        const index = peers.length
        const peer = yield* Effect.mapError(connect, (error: NodeJS.ErrnoException) =>
          // On loopback a server can accept, serve and reset a connection before its peer's
          // connect completes: a reset, not a connection refused.
          error.code === "ECONNRESET"
            ? violation("EarlyReset", `peer ${index}'s connection was reset as it connected${anyDeath(handlers)}`)
            : violation("NotAccepted", `peer ${index} could not connect: ${error.message}`))
        const opened: RunPeer = { index, peer, conversation: protocol?.conversation(), reading: true, resumedAt: now() }
        peers.push(opened)
        yield* peer.startReading
        if (refused) return opened
        yield* Commands.timed(
          accepted.wait(peer),
          timing.margin,
          "NotAccepted",
          `the server's listener never accepted peer ${index}'s connection`
        )
        return opened
      }),
    crowd: (n) =>
      Effect.asVoid(
        Effect.forkIn(
          Effect.forEach(Array.from({ length: n }), () => Effect.ignore(connect), {
            concurrency: "unbounded",
            discard: true
          }),
          peersScope
        )
      ),
    exhaust: (exhausted) =>
      harness.exhaust === undefined
        ? Effect.fail(violation("Unsupported", "only the simulation can run the server's descriptors out"))
        : harness.exhaust(exhausted),
    portFree: harness.expectPortFree(port),
    beginShutdown: life.begin,
    serverDefect: life.defect,
    forceShutdown: life.force,
    awaitShutdown: life.await,
    shutdownStartedAt: () => life.startedAt,
    forcedAt: () => life.forcedAt,
    explain: (target) => fate(handlers?.of(target.peer))
  }
}

/**
 * Plays `scenario` against the server `options` describe (a handler, or a server of the user's
 * making, with a protocol or none), and checks every invariant (see docs/testing.md). Fails with
 * the first violation seen.
 *
 * @internal
 */
export const play = <E, R>(
  harness: Harness,
  scenario: Scenario,
  options: RunOptions & Target<E, R>
): Effect.Effect<Outcome, ShutdownViolation, Exclude<R, Scope.Scope>> =>
  Effect.scoped(Effect.gen(function*() {
    const { handler, protocol: given, serve, ...serverOptions } = options
    if (handler !== undefined && serve !== undefined) {
      return yield* Effect.fail(violation("Unsupported", "a target is a handler or a server of its own, not both"))
    }
    const protocol: Protocol | undefined = given ?? (handler === undefined && serve === undefined ? echo : undefined)
    const accepted = new Accepted()
    // The run's own transport: its listeners watched, and no other server's.
    const transport = accepted.watch(yield* Transport.CurrentTransport)
    const now = transport.now
    const timing = timingOf(options, harness)
    const before = yield* harness.holdings
    const fibers = yield* trackFibers
    const peersScope = yield* Scope.make()
    const life = new ServerLife(transport, timing, harness.serverSocketsOpen)
    // Whatever check fails, nothing of this run may outlive it into the next.
    yield* Effect.addFinalizer(() => Effect.andThen(Scope.close(peersScope, Exit.void), life.release))
    const handlers = handler === undefined ? undefined : new Handlers(now)
    const port = yield* life.start(start(
      options,
      {
        ...serverOptions,
        shutdownTimeout: Duration.millis(timing.shutdownTimeout),
        cleanupTimeout: Duration.millis(timing.cleanupTimeout)
      },
      handlers,
      transport,
      fibers
    ))
    const run = makeRun({ harness, port, protocol, timing, now, accepted, handlers, life, peersScope })

    const model = Model.initialModel(Commands.deadline(timing))
    for (const op of scenario.operations) {
      if (!Model.applies(model, op)) continue
      const phase = model.phase
      const index = "peer" in op ? Model.peerIndex(model, op.peer) : undefined
      Model.step(model, op)
      yield* Commands.act(op, phase, index === undefined ? undefined : run.peers[index], model, run)
    }

    // The end: shutdown returns in time, every connection ends as the protocol allows.
    yield* life.await
    const endings = yield* Commands.expectAllEnded(model, run)
    const lives = handlers === undefined
      ? undefined
      : handlersViolation(handlers.records, life.startedAt!, timing, harness.notice)
    if (lives !== undefined) return yield* Effect.fail(lives)

    // Nothing left behind: port, fibers, sockets, handles, timers.
    yield* Effect.mapError(harness.expectPortFree(port), (error) => violation("PortOpen", error.message))
    const alive = yield* fibers.alive
    if (alive > 0) {
      return yield* Effect.fail(violation("Leak", `${alive} fiber(s) of the server still alive`))
    }
    yield* Scope.close(peersScope, Exit.void)
    yield* Effect.mapError(harness.expectNoLeaks(before), (error) => violation("Leak", error.message))
    return {
      shutdownMillis: life.millis,
      verified: protocol === undefined ? 0 : model.peers.filter((peer) => peer.verified).length,
      peers: run.peers.map((target) => ({
        sent: target.peer.sent().length,
        received: target.peer.received().length,
        halfClosed: model.peers[target.index]!.halfClosed,
        ending: endings[target.index]!
      })),
      handlers: handlers === undefined ? undefined : {
        started: handlers.records.length,
        notified: handlers.records.filter((record) => record.notifiedAt !== undefined).length
      }
    } satisfies Outcome
  }))

/**
 * The first broken invariant of the handlers' lives, if any: every handler ended, its scope's
 * finalizers ran exactly once, none died, and each still running when shutdown began got the
 * drain notice (`exact`: any still running after the notice was due; `cut`: any the deadline cut).
 *
 * @internal
 */
export const handlersViolation = (
  records: ReadonlyArray<HandlerRecord>,
  shutdownStarted: number,
  timing: Pick<Timing, "drainDelay" | "shutdownTimeout">,
  notice: Harness["notice"]
): ShutdownViolation | undefined => {
  for (const record of records) {
    if (record.endedAt === undefined) {
      return violation("Leak", `the handler of ${record.peer} was still running after shutdown returned`)
    }
    if (record.finalized !== 1) {
      return violation(
        "Finalizer",
        record.finalized === 0
          ? `the finalizers of ${record.peer}'s handler never all ran: its scope was not closed, or one never ended`
          : `the finalizers of ${record.peer}'s handler ran ${record.finalized} times, not once`
      )
    }
    const death = died(record)
    if (death !== undefined) return violation("HandlerDied", `the handler of ${record.peer} died: ${death}`)
    if (record.notifiedAt !== undefined || record.startedAt > shutdownStarted) continue
    const ranUntil = record.endedAt - shutdownStarted
    const owed = notice === "exact"
      ? ranUntil > timing.drainDelay
      : record.exit !== undefined && Exit.isFailure(record.exit) && isInterrupted(record.exit.cause) &&
        ranUntil >= timing.drainDelay + timing.shutdownTimeout
    if (owed) {
      return violation(
        "DrainNotice",
        `the handler of ${record.peer}, running when shutdown began, ran ${
          Math.round(ranUntil)
        } ms into it without the drain notice`
      )
    }
  }
  return undefined
}
