/**
 * What a user needs to property-test an Effect TCP server's shutdown and fault handling against
 * real loopback sockets: peers that do exactly what they are told (send, half-close, read, stall,
 * reset) as scoped resources, fast-check arbitraries for sequences of such operations, a runner
 * that plays a sequence with a shutdown at any point and checks the invariants, and a leak check.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Exit, FastCheck as fc, Fiber, Scope, Supervisor } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import { connectSocket } from "./internal/connect.js"
import * as Socket from "./internal/socket.js"
import * as TcpState from "./internal/tcpState.js"
import * as Server from "./Server.js"

// ---------------------------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------------------------

/**
 * A test peer on plain `node:net`: nothing is read until {@link Peer.startReading}, so a peer that
 * never calls it is a stalled reader.
 *
 * @since 0.1.0
 * @category models
 */
export interface Peer {
  readonly socket: net.Socket
  /** Every byte written, in order. */
  readonly sent: () => Buffer
  /** Every byte received so far. */
  readonly received: () => Buffer
  /** Writes `data`; when the kernel does not take it at once, it stays queued in Node. */
  readonly send: (data: Uint8Array) => Effect.Effect<void>
  /** Sends FIN: the recipe's client `shutdown(SHUT_WR)`. */
  readonly halfClose: Effect.Effect<void>
  /** Starts consuming what arrives (idempotent). */
  readonly startReading: Effect.Effect<void>
  /** Closes with RST (`SO_LINGER` 0). */
  readonly reset: Effect.Effect<void>
  /**
   * Reads until the connection ends and returns how: `"eof"` (the server's FIN), `"reset"` or
   * `"closed"`. A reset is told from a FIN by the kernel even where Node reports it as a clean
   * end (a RST right behind the last bytes: see `Client.connect`). Never hangs longer than the
   * server lets a connection live.
   */
  readonly readToEnd: Effect.Effect<"eof" | "reset" | "closed">
}

/**
 * Connects a {@link Peer}; the scope destroys its socket.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (port: number, host = "127.0.0.1"): Effect.Effect<Peer, Error, Scope.Scope> =>
  Effect.map(connectSocket(host, port), makePeer)

const makePeer = (socket: net.Socket): Peer => {
  const ends = TcpState.ends(socket)
  const sent: Array<Buffer> = []
  const received: Array<Buffer> = []
  let ending: "eof" | "reset" | "closed" | undefined
  const waiters: Array<() => void> = []
  const settle = (how: "eof" | "reset" | "closed") => {
    ending ??= how
    for (const wake of waiters.splice(0)) wake()
  }
  socket.on("data", (data: Buffer) => received.push(data))
  socket.on("end", () => settle(ends !== undefined && TcpState.wasReset(ends) === true ? "reset" : "eof"))
  socket.on("error", (error: NodeJS.ErrnoException) => settle(error.code === "ECONNRESET" ? "reset" : "closed"))
  socket.on("close", () => settle("closed"))
  socket.pause()
  return {
    socket,
    sent: () => Buffer.concat(sent),
    received: () => Buffer.concat(received),
    send: (data) =>
      Effect.sync(() => {
        if (socket.destroyed || socket.writableEnded) return
        sent.push(Buffer.from(data))
        socket.write(data)
      }),
    halfClose: Effect.sync(() => {
      if (!socket.destroyed) socket.end()
    }),
    startReading: Effect.sync(() => {
      socket.resume()
    }),
    reset: Effect.sync(() => Socket.close(socket, "reset")),
    readToEnd: Effect.async((resume) => {
      socket.resume()
      if (ending !== undefined) return resume(Effect.succeed(ending))
      const wake = () => resume(Effect.succeed(ending!))
      waiters.push(wake)
      return Effect.sync(() => {
        const i = waiters.indexOf(wake)
        if (i >= 0) waiters.splice(i, 1)
      })
    })
  }
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

/**
 * One step of a scenario. `peer` indexes the peers opened so far (modulo their count).
 *
 * @since 0.1.0
 * @category models
 */
export type Operation =
  | { readonly _tag: "Open" }
  | { readonly _tag: "Send"; readonly peer: number; readonly data: Uint8Array }
  | { readonly _tag: "HalfClose"; readonly peer: number }
  | { readonly _tag: "Read"; readonly peer: number }
  | { readonly _tag: "Stall"; readonly peer: number }
  | { readonly _tag: "Reset"; readonly peer: number }

/**
 * A scenario: operations, and the index before which shutdown begins (`operations.length`: after
 * all of them).
 *
 * @since 0.1.0
 * @category models
 */
export interface Scenario {
  readonly operations: ReadonlyArray<Operation>
  readonly shutdownAt: number
}

/**
 * Operations with payloads up to `maxChunk` bytes (default 16 KiB, small enough for loopback
 * buffers, large enough to need several reads). Lengths span the whole range (`size: "max"`):
 * fast-check's default size would keep them under a dozen bytes.
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const operation = (maxChunk = 16 * 1024): fc.Arbitrary<Operation> => {
  const peer = fc.nat({ max: 7 })
  return fc.oneof(
    { weight: 2, arbitrary: fc.constant({ _tag: "Open" as const }) },
    { weight: 4, arbitrary: fc.record({ _tag: fc.constant("Send" as const), peer, data: fc.uint8Array({ maxLength: maxChunk, size: "max" }) }) },
    { weight: 2, arbitrary: fc.record({ _tag: fc.constant("HalfClose" as const), peer }) },
    { weight: 2, arbitrary: fc.record({ _tag: fc.constant("Read" as const), peer }) },
    { weight: 1, arbitrary: fc.record({ _tag: fc.constant("Stall" as const), peer }) },
    { weight: 1, arbitrary: fc.record({ _tag: fc.constant("Reset" as const), peer }) }
  )
}

/**
 * Scenarios of up to `maxOperations` steps that start with a peer open, with shutdown at any point.
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const scenario = (maxOperations = 20, maxChunk?: number): fc.Arbitrary<Scenario> =>
  fc.array(operation(maxChunk), { maxLength: maxOperations }).chain((rest) => {
    const operations: ReadonlyArray<Operation> = [{ _tag: "Open" }, ...rest]
    return fc.nat({ max: operations.length }).map((shutdownAt) => ({ operations, shutdownAt }))
  })

// ---------------------------------------------------------------------------------------------
// Leak check
// ---------------------------------------------------------------------------------------------

/**
 * What the process holds: socket descriptors (from `/proc/self/fd` where there is one) and Node's
 * active handles by type.
 *
 * @since 0.1.0
 * @category leak check
 */
export interface Holdings {
  readonly sockets: number
  readonly handles: Readonly<Record<string, number>>
}

/**
 * Counts what the process holds now.
 *
 * @since 0.1.0
 * @category leak check
 */
export const holdings = Effect.sync((): Holdings => {
  let sockets = 0
  try {
    for (const fd of fs.readdirSync("/proc/self/fd")) {
      try {
        if (fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith("socket:")) sockets++
      } catch {
        // The descriptor closed while we looked: not held.
      }
    }
  } catch {
    sockets = -1 // no /proc: only handles are compared
  }
  const handles: Record<string, number> = {}
  for (const type of process.getActiveResourcesInfo()) handles[type] = (handles[type] ?? 0) + 1
  return { sockets, handles }
})

const holdsMore = (now: Holdings, before: Holdings) =>
  now.sockets > before.sockets ||
  ["TCPSocketWrap", "TCPServerWrap", "Timeout"].some((type) => (now.handles[type] ?? 0) > (before.handles[type] ?? 0))

/**
 * Waits (at most `within`) until the process holds no more sockets, TCP handles or timers than
 * `before`; fails with both snapshots if it still does. Closing is asynchronous in Node, so a
 * check right after a release must poll rather than look once.
 *
 * @since 0.1.0
 * @category leak check
 */
export const expectNoLeaks = (
  before: Holdings,
  within: Duration.DurationInput = "5 seconds"
): Effect.Effect<void, Error> =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(within)
    let now = yield* holdings
    while (holdsMore(now, before) && Date.now() < deadline) {
      yield* Effect.sleep("10 millis")
      now = yield* holdings
    }
    if (holdsMore(now, before)) {
      return yield* Effect.fail(new Error(`leak: before ${JSON.stringify(before)}, after ${JSON.stringify(now)}`))
    }
  })

/**
 * Binds `port` on 127.0.0.1 with plain Node and lets it go: fails unless the kernel has released
 * it (a listener closed, no socket of the port left in a state that blocks binding).
 *
 * @since 0.1.0
 * @category leak check
 */
export const expectPortFree = (port: number): Effect.Effect<void, Error> =>
  Effect.async<void, Error>((resume) => {
    const probe = net.createServer()
    probe.once("error", (error) => resume(Effect.fail(new Error(`port ${port} is not free: ${error.message}`))))
    probe.listen({ host: "127.0.0.1", port }, () => probe.close(() => resume(Effect.void)))
  })

// ---------------------------------------------------------------------------------------------
// The shutdown property
// ---------------------------------------------------------------------------------------------

/**
 * What {@link checkShutdown} saw, for a failing property to print.
 *
 * @since 0.1.0
 * @category models
 */
export interface Outcome {
  readonly shutdownMillis: number
  readonly peers: ReadonlyArray<{
    readonly sent: number
    readonly received: number
    readonly halfClosedBeforeShutdown: boolean
    readonly ending: string
  }>
}

/**
 * Plays `scenario` against a server started with `options` and `handler` (an echo by default),
 * begins shutdown at `scenario.shutdownAt`, and checks the invariants:
 * 1. shutdown completes (a hang fails at `shutdownTimeout` + `margin`);
 * 2. afterwards the port binds again, no fiber the server forked is alive, and the process holds
 *    no more sockets, TCP handles or timers than before;
 * 3. a peer that half-closed before shutdown and was not stalled or reset received exactly its
 *    bytes, then EOF;
 * 4. every peer received a prefix of what it sent: nothing foreign, nothing twice;
 * 5. every peer still connected sees EOF or a reset, never a hang.
 * Fails with an `Error` naming the broken invariant.
 *
 * @since 0.1.0
 * @category properties
 */
export const checkShutdown = <E = never, R = never>(
  scenario: Scenario,
  options: Server.Options & { readonly margin?: Duration.DurationInput } = {},
  handler?: Server.Handler<E, R>
): Effect.Effect<Outcome, Error, Exclude<R, Scope.Scope>> =>
  Effect.scoped(Effect.gen(function*() {
    const before = yield* holdings
    const supervisor = yield* Supervisor.track
    const serverScope = yield* Scope.make()
    const peersScope = yield* Scope.make()
    // Whatever check fails, nothing of this run may outlive it into the next.
    yield* Effect.addFinalizer(() => Effect.zipRight(Scope.close(peersScope, Exit.void), Scope.close(serverScope, Exit.void)))
    const shutdownTimeout = Duration.decode(options.shutdownTimeout ?? "1 second")
    const server = yield* Scope.extend(
      Server.make({ ...options, shutdownTimeout }, handler as Server.Handler<E, R>),
      serverScope
    ).pipe(Effect.supervised(supervisor), Effect.orDie)
    const port = server.address.port

    interface State {
      readonly peer: Peer
      halfClosed: boolean
      stalled: boolean
      reset: boolean
      halfClosedBeforeShutdown: boolean
    }
    const peers: Array<State> = []
    let shutdown: Fiber.RuntimeFiber<void> | undefined
    let shutdownStarted = 0
    const beginShutdown = Effect.gen(function*() {
      shutdownStarted = performance.now()
      shutdown = yield* Effect.forkDaemon(Scope.close(serverScope, Exit.void))
    })

    for (let i = 0; i <= scenario.operations.length; i++) {
      if (i === scenario.shutdownAt) yield* beginShutdown
      const op = scenario.operations[i]
      if (op === undefined) break
      if (op._tag === "Open") {
        const opened = yield* Effect.either(Scope.extend(connect(port), peersScope))
        // After shutdown began, a refused connection is the expected answer.
        if (opened._tag === "Right") {
          peers.push({ peer: opened.right, halfClosed: false, stalled: false, reset: false, halfClosedBeforeShutdown: false })
        } else if (shutdown === undefined) return yield* Effect.fail(opened.left)
        continue
      }
      const state = peers[op.peer % Math.max(1, peers.length)]
      if (state === undefined || state.reset) continue
      switch (op._tag) {
        case "Send":
          if (!state.halfClosed) yield* state.peer.send(op.data)
          break
        case "HalfClose":
          if (!state.halfClosed) {
            state.halfClosed = true
            state.halfClosedBeforeShutdown = shutdown === undefined
            yield* state.peer.halfClose
          }
          break
        case "Read":
          if (!state.stalled) yield* state.peer.startReading
          break
        case "Stall":
          state.stalled = true
          break
        case "Reset":
          state.reset = true
          yield* state.peer.reset
          break
      }
    }

    // 1. Shutdown completes.
    const margin = Duration.decode(options.margin ?? "10 seconds")
    const completed = yield* Fiber.join(shutdown!).pipe(Effect.timeoutOption(Duration.sum(shutdownTimeout, margin)))
    if (completed._tag === "None") return yield* Effect.fail(new Error("shutdown did not complete"))
    const shutdownMillis = performance.now() - shutdownStarted

    // 5. Every peer still connected sees its connection end.
    const endings = yield* Effect.forEach(peers, (state) =>
      state.reset ? Effect.succeed("reset" as const) : state.peer.readToEnd, { concurrency: "unbounded" }).pipe(
        Effect.timeoutOption(margin)
      )
    if (endings._tag === "None") return yield* Effect.fail(new Error("a peer never saw its connection end"))

    const outcome: Outcome = {
      shutdownMillis,
      peers: peers.map((state, i) => ({
        sent: state.peer.sent().length,
        received: state.peer.received().length,
        halfClosedBeforeShutdown: state.halfClosedBeforeShutdown,
        ending: endings.value[i]!
      }))
    }
    for (const [i, state] of peers.entries()) {
      const sent = state.peer.sent()
      const received = state.peer.received()
      // 4. A prefix of what it sent.
      if (received.length > sent.length || !received.equals(sent.subarray(0, received.length))) {
        return yield* Effect.fail(new Error(`peer ${i} received bytes it did not send: ${JSON.stringify(outcome)}`))
      }
      // 3. The full echo for an orderly peer.
      if (state.halfClosedBeforeShutdown && !state.stalled && !state.reset) {
        if (received.length !== sent.length || endings.value[i] !== "eof") {
          return yield* Effect.fail(new Error(`peer ${i} half-closed before shutdown but got ${received.length} of ${sent.length} bytes (${endings.value[i]}): ${JSON.stringify(outcome)}`))
        }
      }
    }

    // 2. Nothing left behind: port, fibers, sockets, handles, timers.
    yield* expectPortFree(port)
    const alive = (yield* supervisor.value).filter((fiber) => fiber.unsafePoll() === null)
    if (alive.length > 0) return yield* Effect.fail(new Error(`${alive.length} server fiber(s) still alive`))
    yield* Scope.close(peersScope, Exit.void)
    yield* expectNoLeaks(before)
    return outcome
  }))
