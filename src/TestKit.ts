/**
 * What a user needs to property-test an Effect TCP server's shutdown and fault handling against
 * real loopback sockets: peers that do exactly what they are told (send, half-close, read, stall,
 * reset) as scoped resources, fast-check arbitraries for sequences of such operations and the same
 * as model-based commands, a runner that plays them with a shutdown at any point and checks each
 * step against a model, and a leak check.
 *
 * @since 0.1.0
 */
import {
  Cause,
  Data,
  Duration,
  Effect,
  Exit,
  FastCheck as fc,
  Fiber,
  Option,
  Runtime,
  Schedule,
  Scope,
  Supervisor
} from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import { connectWith } from "./internal/connect.js"
import * as Sim from "./internal/sim/run.js"
import * as Socket from "./internal/socket.js"
import * as TcpState from "./internal/tcpState.js"
import * as Transport from "./internal/transport.js"
import * as Server from "./Server.js"

// ---------------------------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------------------------

/**
 * A peer's socket: a `node:net` socket (these are its members a test may use), or the simulated
 * network's.
 *
 * @since 0.1.0
 * @category models
 */
export interface PeerSocket extends Transport.Socket {}

/**
 * A test peer on plain `node:net` (or the simulated network): nothing is read until
 * {@link Peer.startReading}, so a peer that never calls it is a stalled reader.
 *
 * @since 0.1.0
 * @category models
 */
export interface Peer {
  readonly socket: PeerSocket
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
  /** Stops consuming: the socket is paused, and TCP's flow control soon stops the server (idempotent). */
  readonly stopReading: Effect.Effect<void>
  /** Closes with RST (`SO_LINGER` 0). */
  readonly reset: Effect.Effect<void>
  /** Closes without half-closing first (`close()`): a FIN, or a reset when input is unread. */
  readonly close: Effect.Effect<void>
  /**
   * Reads until the connection ends and returns how: `"eof"` (the server's FIN), `"reset"` or
   * `"closed"`. A reset is told from a FIN by the kernel even where Node reports it as a clean
   * end (a RST right behind the last bytes: see `Client.connect`). Never hangs longer than the
   * server lets a connection live.
   */
  readonly readToEnd: Effect.Effect<"eof" | "reset" | "closed">
  /** When the connection was seen to end (the transport's clock, milliseconds), once it was. */
  readonly endedAt: () => number | undefined
}

/**
 * Connects a {@link Peer}; the scope destroys its socket.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (port: number, host = "127.0.0.1"): Effect.Effect<Peer, Error, Scope.Scope> =>
  Effect.flatMap(
    Transport.CurrentTransport,
    (transport) => Effect.map(connectWith(transport, host, port), (socket) => makePeer(socket, transport))
  )

const makePeer = (socket: Transport.Socket, transport: Transport.Transport): Peer => {
  const ends = TcpState.ends(socket)
  const sent: Array<Buffer> = []
  const received: Array<Buffer> = []
  let ending: "eof" | "reset" | "closed" | undefined
  let endedAt: number | undefined
  const waiters: Array<() => void> = []
  const settle = (how: "eof" | "reset" | "closed") => {
    if (ending !== undefined) return
    ending = how
    endedAt = transport.now()
    for (const wake of waiters.splice(0)) wake()
  }
  socket.on("data", (data: Buffer) => received.push(data))
  socket.on("end", () => settle(ends !== undefined && transport.endWasReset(socket, ends) === true ? "reset" : "eof"))
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
    stopReading: Effect.sync(() => {
      socket.pause()
    }),
    reset: Effect.sync(() => Socket.close(socket, "reset")),
    close: Effect.sync(() => {
      socket.destroy()
    }),
    endedAt: () => endedAt,
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
 * One step of a scenario. `peer` indexes the peers opened so far (modulo their count); a step
 * that cannot apply (no peer yet, a peer already reset, a second shutdown) is skipped.
 *
 * @since 0.1.0
 * @category models
 */
export type Operation =
  /** Connects a peer, reading what it receives. */
  | { readonly _tag: "Open" }
  /** The recipe's client: a new peer sends `data` (at least a byte), half-closes, and reads its echo. */
  | { readonly _tag: "Exchange"; readonly data: Uint8Array }
  | { readonly _tag: "Send"; readonly peer: number; readonly data: Uint8Array }
  | { readonly _tag: "HalfClose"; readonly peer: number }
  /** Starts reading again after a stall. */
  | { readonly _tag: "Read"; readonly peer: number }
  /** Stops reading: the socket is paused, and TCP's flow control stops what the server sends. */
  | { readonly _tag: "Stall"; readonly peer: number }
  | { readonly _tag: "Reset"; readonly peer: number }
  /** The peer leaves: closes its socket without half-closing, whatever is in flight (a FIN, or a reset with input unread). */
  | { readonly _tag: "Close"; readonly peer: number }
  /** A burst of `peers` connections at once, silent, never waited for: the accept queue overflows if it is small. */
  | { readonly _tag: "Flood"; readonly peers: number }
  /**
   * Simulation only: the server's descriptors run out (every accept fails with `EMFILE`, as the
   * kernel closes the connection), or come back.
   */
  | { readonly _tag: "Descriptors"; readonly exhausted: boolean }
  /** Begins the server's shutdown (at most once; after the last step otherwise). */
  | { readonly _tag: "Shutdown" }
  /** Lets time pass; once shutdown began, enough of it crosses the deadline. */
  | { readonly _tag: "Wait"; readonly millis: number }

/**
 * A scenario: operations played in order.
 *
 * @since 0.1.0
 * @category models
 */
export interface Scenario {
  readonly operations: ReadonlyArray<Operation>
}

/**
 * What the arbitraries generate. `shutdownTimeout` and `cleanupTimeout` must be the server's:
 * a long `Wait` is sized to cross them.
 *
 * @since 0.1.0
 * @category arbitraries
 */
export interface Generation {
  /** Payloads up to this many bytes. Default 16 KiB: small enough for loopback's buffers, large enough for several reads. */
  readonly maxChunk?: number
  /** Default 24. */
  readonly maxOperations?: number
  /** Default 400 ms. */
  readonly shutdownTimeout?: Duration.DurationInput
  /** Default 1 s (the server's default). */
  readonly cleanupTimeout?: Duration.DurationInput
  /** Faults only a simulation can play (descriptors running out). Default false. */
  readonly simulated?: boolean
  /**
   * For {@link commands}: the `replayPath` a failure printed in its counterexample
   * (`/*replayPath="..."*\/`), with its seed and path, to replay the same commands at once.
   */
  readonly replayPath?: string
}

const generation = (options: Generation) => ({
  simulated: options.simulated ?? false,
  maxChunk: options.maxChunk ?? 16 * 1024,
  maxOperations: options.maxOperations ?? 24,
  deadlineMillis: Duration.toMillis(Duration.decode(options.shutdownTimeout ?? "400 millis")) +
    Duration.toMillis(Duration.decode(options.cleanupTimeout ?? Server.defaults.cleanupTimeout))
})

/**
 * Operations, weighted so that most scenarios hold a peer that sends and half-closes while it
 * reads, before shutdown (the one the key invariant is about), with stalls, resets and waits rarer.
 * Payload lengths span the whole range up to `maxChunk`; their bytes follow a seeded pattern in
 * which every byte depends on its position, so a byte out of place shows.
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const operation = (options: Generation = {}): fc.Arbitrary<Operation> => {
  const { deadlineMillis, maxChunk, simulated } = generation(options)
  const peer = fc.nat({ max: 7 })
  // A length and a pattern: drawing every byte from fast-check costs more than the rest of a run.
  const payload = (minLength: number) =>
    fc.tuple(fc.integer({ min: minLength, max: maxChunk }), fc.nat()).map(([length, seed]) => pattern(length, seed))
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant({ _tag: "Open" as const }) },
    {
      weight: 3,
      arbitrary: fc.record({
        _tag: fc.constant("Exchange" as const),
        data: payload(1)
      })
    },
    {
      weight: 6,
      arbitrary: fc.record({
        _tag: fc.constant("Send" as const),
        peer,
        data: payload(0)
      })
    },
    { weight: 5, arbitrary: fc.record({ _tag: fc.constant("HalfClose" as const), peer }) },
    { weight: 1, arbitrary: fc.record({ _tag: fc.constant("Read" as const), peer }) },
    { weight: 1, arbitrary: fc.record({ _tag: fc.constant("Stall" as const), peer }) },
    { weight: 1, arbitrary: fc.record({ _tag: fc.constant("Reset" as const), peer }) },
    { weight: 1, arbitrary: fc.record({ _tag: fc.constant("Close" as const), peer }) },
    {
      weight: 1,
      arbitrary: fc.record({ _tag: fc.constant("Flood" as const), peers: fc.integer({ min: 1, max: 24 }) })
    },
    ...(simulated
      ? [{ weight: 1, arbitrary: fc.record({ _tag: fc.constant("Descriptors" as const), exhausted: fc.boolean() }) }]
      : []),
    { weight: 1, arbitrary: fc.constant({ _tag: "Shutdown" as const }) },
    {
      weight: 3,
      arbitrary: fc.record({
        _tag: fc.constant("Wait" as const),
        millis: fc.oneof(fc.integer({ min: 1, max: 50 }), fc.constant(deadlineMillis + 50))
      })
    }
  )
}

const pattern = (length: number, seed: number): Uint8Array => {
  const bytes = new Uint8Array(length)
  let x = (seed | 1) >>> 0
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    bytes[i] = x & 0xff
  }
  return bytes
}

/**
 * Scenarios that start with a peer open.
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const scenario = (options: Generation = {}): fc.Arbitrary<Scenario> =>
  fc.array(operation(options), { maxLength: generation(options).maxOperations }).map((rest) => ({
    operations: [{ _tag: "Open" as const }, ...rest]
  }))

/**
 * The same operations as fast-check commands, for `fc.commands`-style model-based testing: each
 * checks its precondition against the {@link Model}, acts on the real server and its peers, and
 * checks its postcondition (see {@link checkShutdown}). Shrinking removes commands and shrinks payloads.
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const commands = (options: Generation = {}): fc.Arbitrary<Iterable<fc.AsyncCommand<Model, Real>>> =>
  fc.commands([operation(options).map((op) => new Command(op))], {
    maxCommands: generation(options).maxOperations,
    size: "max",
    ...(options.replayPath === undefined ? {} : { replayPath: options.replayPath })
  }).map((rest) => ({
    // Every sequence starts with a peer open: without one, most steps would have nothing to act on.
    *[Symbol.iterator]() {
      yield firstOpen
      yield* rest
    },
    toString: () => `${firstOpen},${String(rest)}`
  }))

/**
 * The `replayPath` fast-check prints in a command sequence's counterexample: with the failure's
 * seed and path, pass it back in {@link Generation} to replay the same shrunk commands.
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const replayPathOf = (commands: Iterable<unknown>): string | undefined =>
  /\/\*replayPath="([^"]*)"\*\//.exec(String(commands))?.[1]

/**
 * The sequence of operations a generated command sequence (from {@link commands}) holds, in order,
 * including the steps skipped because they did not apply.
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const operations = (commands: Iterable<fc.AsyncCommand<Model, Real>>): ReadonlyArray<Operation> =>
  Array.from(
    commands,
    (command) => command instanceof Command ? command.op : (command as unknown as { readonly cmd: Command }).cmd.op
  )

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/**
 * What a peer has done, as the model knows it.
 *
 * @since 0.1.0
 * @category models
 */
export interface PeerModel {
  sent: number
  halfClosed: "no" | "while serving" | "while draining"
  reading: boolean
  /** It reset or closed its own connection: only the prefix check applies to it. */
  reset: boolean
  /** Its full, non-empty echo and EOF were checked when it half-closed (the key invariant). */
  verified: boolean
  /** It connected while the server's descriptors had run out: never served, its connection just ends. */
  refused: boolean
}

/**
 * What the server and its peers should be doing: the model the commands check against.
 *
 * @since 0.1.0
 * @category models
 */
export interface Model {
  readonly peers: Array<PeerModel>
  phase: "serving" | "draining" | "stopped"
  /** Time waited since shutdown began, in the scenario's own account. */
  waitedMillis: number
  /** `shutdownTimeout + cleanupTimeout`: past it, the server must be gone. */
  readonly deadlineMillis: number
  /** On a simulated network, where simulation-only faults apply. */
  readonly simulated: boolean
  /** The server's descriptors have run out (a simulated fault). */
  exhausted: boolean
}

/**
 * The model at the start of a run, whose deadline (`shutdownTimeout + cleanupTimeout`) is
 * `deadlineMillis`.
 *
 * @since 0.1.0
 * @category models
 */
export const initialModel = (deadlineMillis: number, simulated = false): Model => ({
  peers: [],
  phase: "serving",
  waitedMillis: 0,
  deadlineMillis,
  simulated,
  exhausted: false
})

const peerOf = (model: Model, peer: number): PeerModel | undefined =>
  model.peers.length === 0 ? undefined : model.peers[peer % model.peers.length]

/**
 * Whether `op` applies in `model` (its precondition), and the model after it. Pure: the same
 * scenario can be replayed against the model alone, to measure what the generators produce.
 *
 * @since 0.1.0
 * @category models
 */
export const applies = (model: Model, op: Operation): boolean => {
  switch (op._tag) {
    case "Open":
    case "Wait":
      return true
    case "Flood":
      return model.phase === "serving"
    case "Descriptors":
      return model.simulated && model.exhausted !== op.exhausted
    case "Exchange":
      return model.phase === "serving"
    case "Shutdown":
      return model.phase === "serving"
    case "Send":
    case "HalfClose": {
      const peer = peerOf(model, op.peer)
      return peer !== undefined && !peer.reset && peer.halfClosed === "no"
    }
    case "Read":
    case "Stall":
    case "Reset":
    case "Close": {
      const peer = peerOf(model, op.peer)
      return peer !== undefined && !peer.reset &&
        (op._tag === "Reset" || op._tag === "Close" || (op._tag === "Read") !== peer.reading)
    }
  }
}

/**
 * The model after `op` (which {@link applies}).
 *
 * @since 0.1.0
 * @category models
 */
export const step = (model: Model, op: Operation): void => {
  const peer = "peer" in op ? peerOf(model, op.peer) : undefined
  switch (op._tag) {
    case "Open":
      if (model.phase === "serving") {
        model.peers.push({
          sent: 0,
          halfClosed: "no",
          reading: true,
          reset: false,
          verified: false,
          refused: model.exhausted
        })
      }
      return
    case "Exchange":
      model.peers.push({
        sent: op.data.length,
        halfClosed: "while serving",
        reading: true,
        reset: false,
        verified: !model.exhausted,
        refused: model.exhausted
      })
      return
    case "Flood":
      return
    case "Descriptors":
      model.exhausted = op.exhausted
      return
    case "Send":
      peer!.sent += op.data.length
      return
    case "HalfClose":
      peer!.halfClosed = model.phase === "serving" ? "while serving" : "while draining"
      // A peer that reads while the server serves must get its whole echo at once: checked then
      // (and counted as such only when there was an echo to get).
      if (peer!.reading && model.phase === "serving" && peer!.sent > 0 && !peer!.refused) peer!.verified = true
      return
    case "Read":
      peer!.reading = true
      return
    case "Stall":
      peer!.reading = false
      return
    case "Reset":
    case "Close":
      peer!.reset = true
      return
    case "Shutdown":
      model.phase = "draining"
      return
    case "Wait":
      if (model.phase !== "draining") return
      model.waitedMillis += op.millis
      if (model.waitedMillis >= model.deadlineMillis) model.phase = "stopped"
      return
  }
}

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
 * What a run saw, for a failing property to print and a passing one to be counted.
 *
 * @since 0.1.0
 * @category models
 */
export interface Outcome {
  readonly shutdownMillis: number
  /** Peers whose full echo was checked when they half-closed (the key invariant applied). */
  readonly verified: number
  readonly peers: ReadonlyArray<{
    readonly sent: number
    readonly received: number
    readonly halfClosed: PeerModel["halfClosed"]
    readonly ending: string
  }>
}

/**
 * The real side of a run: the server, its peers, and the shutdown once begun.
 *
 * @since 0.1.0
 * @category models
 */
export interface Real {
  readonly port: number
  readonly peers: Array<Peer>
  readonly margin: Duration.Duration
  /**
   * Runs a command's act: on real sockets, at once, in the run's runtime; in a simulation, as the
   * next step of the run itself (the promise is then already resolved).
   */
  readonly run: (effect: Effect.Effect<void, Error, Scope.Scope>) => Promise<void>
  /**
   * Connects a peer, and returns once the server has accepted it: a shutdown right after a
   * connect would otherwise find the handshake still in the kernel's accept queue, where closing
   * the listener resets it.
   */
  readonly open: Effect.Effect<Peer, Error>
  /** Connects a peer without waiting for the server to accept it (it may never). */
  readonly openUnserved: Effect.Effect<Peer, Error>
  /** Peers of a `Flood`: connecting, or connected and silent, until the run ends. */
  readonly crowd: (peers: number) => Effect.Effect<void>
  /** Runs the server's descriptors out, or gives them back (a simulation's fault). */
  readonly exhaust: (exhausted: boolean) => Effect.Effect<void>
  /** Fails unless the server's port is free (bound by nothing). */
  readonly portFree: Effect.Effect<void, Error>
  readonly beginShutdown: Effect.Effect<void>
  readonly awaitShutdown: Effect.Effect<void, Error>
  /** When shutdown began (`performance.now()`; `undefined` before), and the server's deadline. */
  readonly shutdownStartedAt: () => number | undefined
  readonly shutdownTimeoutMillis: number
}

/**
 * One operation as a fast-check command: precondition against the model, the act, and the
 * postcondition checked right after it:
 * - `Open` connects while the server serves;
 * - `Send`: what the peer received so far is a prefix of what it sent;
 * - `HalfClose` of a peer that reads, while the server serves: its whole echo arrives, then EOF
 *   (the key invariant); while it drains: that, or a reset once the deadline passed;
 * - `Shutdown`: the port refuses connections before the deadline (the listener closes first);
 * - `Wait` that crosses the deadline: the shutdown completes, every connection has ended, and none
 *   ended cleanly short of its echo.
 *
 * @since 0.1.0
 * @category models
 */
export class Command implements fc.AsyncCommand<Model, Real> {
  constructor(readonly op: Operation) {}

  check(model: Readonly<Model>): boolean {
    return applies(model, this.op)
  }

  run(model: Model, real: Real): Promise<void> {
    const op = this.op
    const phase = model.phase
    const peer = "peer" in op && real.peers.length > 0 ? real.peers[op.peer % real.peers.length] : undefined
    step(model, op)
    return real.run(act(op, phase, peer, model, real))
  }

  toString(): string {
    const op = this.op
    switch (op._tag) {
      case "Send":
        return `Send(${op.peer}, ${op.data.length} bytes)`
      case "Wait":
        return `Wait(${op.millis} ms)`
      case "Exchange":
        return `Exchange(${op.data.length} bytes)`
      case "Flood":
        return `Flood(${op.peers})`
      case "Descriptors":
        return `Descriptors(${op.exhausted ? "exhausted" : "back"})`
      case "Open":
      case "Shutdown":
        return op._tag
      default:
        return `${op._tag}(${op.peer})`
    }
  }
}

const firstOpen = new Command({ _tag: "Open" })

const act = (op: Operation, phase: Model["phase"], peer: Peer | undefined, model: Model, real: Real) =>
  Effect.gen(function*() {
    switch (op._tag) {
      case "Open": {
        if (phase !== "serving") {
          // The Shutdown step checked that the port refuses connections: one that connects now
          // reached another listener that took the port since (another test's), not this server.
          return yield* Effect.ignore(Effect.scoped(real.open))
        }
        const state = model.peers[model.peers.length - 1]!
        // With its descriptors gone the server never accepts it: it is closed by the kernel.
        const opened = yield* (state.refused ? real.openUnserved : real.open)
        real.peers.push(opened)
        yield* opened.startReading
        if (!state.refused) return
        yield* timed(opened.readToEnd, real.margin, "a connection refused for want of descriptors never ended")
        return
      }
      case "Exchange": {
        const state = model.peers[model.peers.length - 1]!
        const opened = yield* (state.refused ? real.openUnserved : real.open)
        real.peers.push(opened)
        yield* opened.startReading
        yield* opened.send(op.data)
        yield* opened.halfClose
        const ending = yield* timed(opened.readToEnd, real.margin, "a peer that half-closed never saw its echo end")
        return yield* expectWhole(opened, state, ending, "eof", real)
      }
      case "Close":
        return yield* peer!.close
      case "Flood":
        return yield* real.crowd(op.peers)
      case "Descriptors":
        return yield* real.exhaust(op.exhausted)
      case "Send":
        yield* peer!.send(op.data)
        return yield* expectPrefix(peer!, "after a send")
      case "HalfClose": {
        yield* peer!.halfClose
        const state = peerOf(model, op.peer)!
        if (!state.reading || phase === "stopped") return
        const ending = yield* timed(peer!.readToEnd, real.margin, "a peer that half-closed never saw its echo end")
        return yield* expectWhole(peer!, state, ending, phase === "serving" ? "eof" : "eof or reset", real)
      }
      case "Read":
        return yield* peer!.startReading
      case "Stall":
        return yield* peer!.stopReading
      case "Reset":
        return yield* peer!.reset
      case "Shutdown":
        yield* real.beginShutdown
        // At once: before the deadline, the listener is the first thing shutdown closes.
        return yield* timed(
          Effect.retry(real.portFree, Schedule.spaced("5 millis")),
          Duration.millis(real.shutdownTimeoutMillis),
          "the port still accepted connections at the shutdown deadline"
        )
      case "Wait":
        yield* Effect.sleep(op.millis)
        if (phase !== "draining" || model.phase !== "stopped") return
        yield* real.awaitShutdown
        return yield* expectAllEnded(model, real)
    }
  })

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>, margin: Duration.Duration, message: string) =>
  Effect.flatMap(
    Effect.timeoutOption(effect, margin),
    Option.match({ onNone: () => Effect.fail(new Error(message)), onSome: Effect.succeed })
  )

/** What a peer received is a prefix of what it sent: nothing foreign, nothing twice. */
const expectPrefix = (peer: Peer, when: string) =>
  Effect.suspend(() => {
    const sent = peer.sent()
    const received = peer.received()
    return received.length <= sent.length && received.equals(sent.subarray(0, received.length))
      ? Effect.void
      : Effect.fail(
        new Error(`${when}: received ${received.length} bytes that are not a prefix of the ${sent.length} sent`)
      )
  })

/**
 * The peer's connection ended as `allowed` says; a clean end came only after it half-closed and
 * got its whole echo; and a reset came only once the deadline had passed (a peer that reset
 * itself is not asked). Real time only makes the last check apply less often on a slow machine:
 * a reset seen before the deadline happened before it.
 */
const expectWhole = (
  peer: Peer,
  state: PeerModel,
  ending: "eof" | "reset" | "closed",
  allowed: "eof" | "eof or reset",
  real: Real
) =>
  Effect.gen(function*() {
    if (state.reset) return
    yield* expectPrefix(peer, "at the end")
    if (state.refused) return
    const { received, sent } = { received: peer.received().length, sent: peer.sent().length }
    if (ending === "eof" && (received !== sent || state.halfClosed === "no")) {
      return yield* Effect.fail(
        new Error(
          state.halfClosed === "no"
            ? `a clean end for a peer that had not half-closed, after ${received} of ${sent} bytes`
            : `a clean end after ${received} of ${sent} bytes: a cut-off echo that looks complete`
        )
      )
    }
    if (allowed === "eof" && ending !== "eof") {
      return yield* Effect.fail(
        new Error(`a peer that half-closed while the server served saw a ${ending}, not its echo`)
      )
    }
    // Compared with when the end was seen, not now: a check at the end of the run still applies.
    const started = real.shutdownStartedAt()
    const endedAt = peer.endedAt()
    const since = started === undefined || endedAt === undefined ? undefined : endedAt - started
    if (ending !== "eof" && (started === undefined || (since !== undefined && since < real.shutdownTimeoutMillis))) {
      return yield* Effect.fail(
        new Error(
          since === undefined
            ? `a connection ended with a ${ending} while the server served`
            : `a connection ended with a ${ending} ${
              Math.round(since)
            } ms into shutdown, before its ${real.shutdownTimeoutMillis} ms deadline`
        )
      )
    }
  })

/** Every peer's connection ends, and none ends cleanly before its whole echo. */
const expectAllEnded = (model: Model, real: Real) =>
  Effect.gen(function*() {
    const endings = yield* timed(
      Effect.forEach(real.peers, (peer) => peer.readToEnd, { concurrency: "unbounded" }),
      real.margin,
      "a peer never saw its connection end"
    )
    for (const [i, peer] of real.peers.entries()) {
      yield* expectWhole(peer, model.peers[i]!, endings[i]!, "eof or reset", real)
    }
    return endings
  })

/**
 * Options of a run: the server's, and how long to wait, past its deadlines, before calling a
 * hang a hang (default 10 s).
 *
 * @since 0.1.0
 * @category models
 */
export type RunOptions = Server.Options & { readonly margin?: Duration.DurationInput }

/**
 * Plays `commands` (from {@link commands}, or a {@link Scenario}'s operations) against a server
 * started with `options` and `handler` (an echo by default; the invariants assume an echo), with
 * fast-check's `asyncModelRun`: every step's postcondition is checked as it runs (see
 * {@link Command}). Shutdown begins at the `Shutdown` step, or after the last one. Then:
 * 1. shutdown completes (a hang fails after its deadlines plus `margin`);
 * 2. every peer sees its connection end, EOF or reset, never a hang;
 * 3. every peer received a prefix of what it sent; a clean end only after it half-closed and got
 *    all of it; a reset only once the shutdown deadline had passed;
 * 4. the port binds again, no fiber the server forked is alive, and the process holds no more
 *    sockets, TCP handles or timers than before.
 * Fails with an `Error` naming the broken invariant.
 *
 * @since 0.1.0
 * @category properties
 */
export const checkShutdown = <E = never, R = never>(
  commands: Iterable<fc.AsyncCommand<Model, Real>> | Scenario,
  options: RunOptions = {},
  handler?: Server.Handler<E, R>
): Effect.Effect<Outcome, Error, Exclude<R, Scope.Scope>> =>
  Effect.flatMap(Effect.runtime<never>(), (runtime) =>
    play(
      {
        holdings,
        expectNoLeaks,
        expectPortFree,
        simulated: false,
        exhaust: () => Effect.void,
        now: () => performance.now(),
        execute: (effect) => Runtime.runPromise(runtime)(effect),
        playAll: (model, real, played) =>
          Effect.tryPromise({
            try: () => fc.asyncModelRun(() => ({ model, real }), played),
            catch: (error) => error instanceof Error ? error : new Error(String(error))
          })
      },
      commands,
      options,
      handler
    ))

/**
 * Where a run plays: its leak checks, its clock, and how the commands are played.
 *
 * @internal
 */
interface Harness {
  readonly holdings: Effect.Effect<Holdings>
  readonly expectNoLeaks: (before: Holdings) => Effect.Effect<void, Error>
  readonly expectPortFree: (port: number) => Effect.Effect<void, Error>
  readonly simulated: boolean
  readonly now: () => number
  /** Runs the server's descriptors out, or gives them back (a simulation's fault). */
  readonly exhaust: (exhausted: boolean) => Effect.Effect<void>
  /** How a command's act runs, when the commands are played by fast-check. */
  readonly execute: (effect: Effect.Effect<void, Error>) => Promise<void>
  readonly playAll: (
    model: Model,
    real: Real,
    commands: Iterable<fc.AsyncCommand<Model, Real>>
  ) => Effect.Effect<void, Error>
}

const play = <E, R>(
  harness: Harness,
  commands: Iterable<fc.AsyncCommand<Model, Real>> | Scenario,
  options: RunOptions,
  handler: Server.Handler<E, R> | undefined
): Effect.Effect<Outcome, Error, Exclude<R, Scope.Scope>> =>
  Effect.scoped(Effect.gen(function*() {
    const before = yield* harness.holdings
    const supervisor = yield* Supervisor.track
    const serverScope = yield* Scope.make()
    const peersScope = yield* Scope.make()
    // Whatever check fails, nothing of this run may outlive it into the next.
    yield* Effect.addFinalizer(() =>
      Effect.zipRight(Scope.close(peersScope, Exit.void), Scope.close(serverScope, Exit.void))
    )
    const shutdownTimeout = Duration.decode(options.shutdownTimeout ?? "400 millis")
    const cleanupTimeout = Duration.decode(options.cleanupTimeout ?? Server.defaults.cleanupTimeout)
    const margin = Duration.decode(options.margin ?? "10 seconds")
    const server = yield* Scope.extend(
      Server.make({ ...options, shutdownTimeout, cleanupTimeout }, handler as Server.Handler<E, R>),
      serverScope
    ).pipe(Effect.supervised(supervisor), Effect.orDie)
    const port = server.address.port
    let shutdown: Fiber.RuntimeFiber<void> | undefined
    let shutdownStarted = 0
    let shutdownEnded = 0
    const beginShutdown = Effect.suspend(() => {
      if (shutdown !== undefined) return Effect.void
      shutdownStarted = harness.now()
      const closing = Effect.ensuring(
        Scope.close(serverScope, Exit.void),
        Effect.sync(() => {
          shutdownEnded = harness.now()
        })
      )
      return Effect.map(Effect.forkDaemon(closing), (fiber) => {
        shutdown = fiber
      })
    })
    const awaitShutdown = Effect.zipRight(
      beginShutdown,
      Effect.suspend(() =>
        timed(
          Fiber.join(shutdown!),
          Duration.sum(Duration.sum(shutdownTimeout, cleanupTimeout), margin),
          "shutdown did not complete"
        )
      )
    )
    const real: Real = {
      port,
      peers: [],
      margin,
      run: (effect) => harness.execute(Scope.extend(effect, peersScope)),
      open: Effect.tap(
        Scope.extend(connect(port), peersScope),
        (peer) => {
          // Its own connection, by address: the server lists it (or has served it already).
          const name = `${peer.socket.localAddress ?? "127.0.0.1"}:${peer.socket.localPort}`
          return timed(
            Effect.repeat(Effect.map(server.connections, (live) => live.some((c) => c.peer === name)), {
              until: (listed) => listed || peer.endedAt() !== undefined,
              schedule: Schedule.spaced("1 millis")
            }),
            margin,
            "the server never accepted a connection"
          )
        }
      ),
      openUnserved: Scope.extend(connect(port), peersScope),
      crowd: (peers) =>
        Effect.asVoid(
          Effect.forkIn(
            Effect.forEach(
              Array.from({ length: peers }),
              () => Effect.ignore(Scope.extend(connect(port), peersScope)),
              {
                concurrency: "unbounded",
                discard: true
              }
            ),
            peersScope
          )
        ),
      exhaust: harness.exhaust,
      portFree: harness.expectPortFree(port),
      beginShutdown,
      awaitShutdown,
      shutdownStartedAt: () => shutdown === undefined ? undefined : shutdownStarted,
      shutdownTimeoutMillis: Duration.toMillis(shutdownTimeout)
    }
    const model = initialModel(Duration.toMillis(Duration.sum(shutdownTimeout, cleanupTimeout)), harness.simulated)
    const played = "operations" in commands ? commands.operations.map((op) => new Command(op)) : commands
    yield* harness.playAll(model, real, played)

    // 1 and 2: shutdown completes, and every connection ends.
    yield* awaitShutdown
    const shutdownMillis = shutdownEnded - shutdownStarted
    const endings = yield* expectAllEnded(model, real)
    const outcome: Outcome = {
      shutdownMillis,
      verified: model.peers.filter((peer) => peer.verified).length,
      peers: real.peers.map((peer, i) => ({
        sent: peer.sent().length,
        received: peer.received().length,
        halfClosed: model.peers[i]!.halfClosed,
        ending: endings[i]!
      }))
    }

    // 4. Nothing left behind: port, fibers, sockets, handles, timers.
    yield* harness.expectPortFree(port)
    const alive = (yield* supervisor.value).filter((fiber) => fiber.unsafePoll() === null)
    if (alive.length > 0) return yield* Effect.fail(new Error(`${alive.length} server fiber(s) still alive`))
    yield* Scope.close(peersScope, Exit.void)
    yield* harness.expectNoLeaks(before)
    return outcome
  }))

// ---------------------------------------------------------------------------------------------
// The simulation
// ---------------------------------------------------------------------------------------------

/**
 * The simulated kernels a run plays on; every size in bytes. See docs/simulation.md for what is
 * modelled.
 *
 * @since 0.1.0
 * @category simulation
 */
export interface Network {
  /** Each receiver's kernel buffer. Default 128 KiB. */
  readonly receiveBuffer?: number
  /** Each sender's kernel buffer. Default 64 KiB. */
  readonly sendBuffer?: number
  /** The most one read delivers: reads are split anywhere from 1 byte to this. Default 64 KiB. */
  readonly maxRead?: number
  /** `net.core.somaxconn`, which caps the accept queue. Default 4096. */
  readonly somaxconn?: number
  /** Descriptors the server may hold for connections; beyond, accept fails (`EMFILE`). Default: no limit. */
  readonly descriptors?: number
}

/**
 * A simulated run: the server's options, the seed of the world (which decides the order of every
 * event and how writes are split into reads), and its network.
 *
 * @since 0.1.0
 * @category simulation
 */
export interface SimulationOptions extends RunOptions {
  readonly seed: number
  readonly network?: Network
  /** Trace lines kept for a failure to print. Default 200. */
  readonly keepTrace?: number
}

/**
 * What a simulated run saw: its {@link Outcome}, the seed, a hash of its whole event trace (the
 * same seed and scenario give the same hash), how many events it played and how much virtual
 * time passed.
 *
 * @since 0.1.0
 * @category simulation
 */
export interface SimulatedOutcome extends Outcome {
  readonly seed: number
  readonly trace: string
  readonly steps: number
  readonly virtualMillis: number
}

/**
 * A simulated run broke an invariant (or could not end): the error, the seed, the trace hash and
 * the last events of the trace.
 *
 * @since 0.1.0
 * @category simulation
 */
export class SimulationFailure extends Data.TaggedError("SimulationFailure")<{
  readonly seed: number
  readonly trace: string
  readonly lines: ReadonlyArray<string>
  readonly cause: unknown
}> {
  override get message(): string {
    const cause = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `${cause} (simulation seed ${this.seed}, trace ${this.trace})\n` +
      `last events:\n  ${this.lines.slice(-30).join("\n  ")}`
  }
}

/**
 * Networks to play on: small and large kernel buffers (a stalled reader stops the writer sooner or
 * later), reads cut small (a slow reader), and an accept queue of one (a burst of connections
 * overflows it, and their SYNs are retried).
 *
 * @since 0.1.0
 * @category simulation
 */
export const network = (): fc.Arbitrary<Network> =>
  fc.record({
    receiveBuffer: fc.constantFrom(1024, 8192, 65536, 262144),
    sendBuffer: fc.constantFrom(1024, 16384, 65536),
    maxRead: fc.constantFrom(64, 1460, 65536),
    somaxconn: fc.constantFrom(1, 4, 4096)
  })

/**
 * One simulated run to generate: its commands (with the faults only a simulation can play), the
 * seed of its world, and its network.
 *
 * @since 0.1.0
 * @category simulation
 */
export interface Simulated {
  readonly commands: Iterable<fc.AsyncCommand<Model, Real>>
  readonly seed: number
  readonly network: Network
}

/**
 * Simulated runs: {@link commands} with simulation-only faults, a world seed, a {@link network}.
 * Pass each to {@link simulate} with the same `shutdownTimeout` and `cleanupTimeout`.
 *
 * @since 0.1.0
 * @category simulation
 */
export const simulated = (options: Generation = {}): fc.Arbitrary<Simulated> =>
  fc.record({
    commands: commands({ ...options, simulated: true }),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    network: network()
  })

/**
 * Plays `commands` (or a scenario) on the simulated network, with the same invariants as
 * {@link checkShutdown}: the same server code, on simulated sockets, with every timer on virtual
 * time and every interleaving chosen by `seed`. A run of a few seconds of virtual time takes
 * milliseconds, and the same seed replays it exactly.
 *
 * @since 0.1.0
 * @category simulation
 */
export const simulate = <E = never, R = never>(
  commands: Iterable<fc.AsyncCommand<Model, Real>> | Scenario,
  options: SimulationOptions,
  handler?: Server.Handler<E, R>
): Effect.Effect<SimulatedOutcome, SimulationFailure, Exclude<R, Scope.Scope>> =>
  Effect.flatMap(Effect.context<Exclude<R, Scope.Scope>>(), (context) =>
    Effect.suspend(() => {
      const sim = new Sim.Simulation({
        seed: options.seed,
        ...(options.network === undefined ? {} : { net: options.network }),
        ...(options.keepTrace === undefined ? {} : { keepTrace: options.keepTrace })
      })
      const { network, world } = sim
      let pending: Effect.Effect<void, Error> | undefined
      const simHoldings = Effect.sync((): Holdings => ({
        sockets: network.open.size,
        handles: {
          TCPServerWrap: network.listeners.size,
          TCPSocketWrap: network.open.size,
          Timeout: world.timersPending
        }
      }))
      const harness: Harness = {
        holdings: simHoldings,
        expectNoLeaks: (before) =>
          Effect.gen(function*() {
            let now = yield* simHoldings
            for (let i = 0; i < 100 && holdsMore(now, before); i++) {
              yield* Effect.sleep("10 millis")
              now = yield* simHoldings
            }
            if (holdsMore(now, before)) {
              return yield* Effect.fail(
                new Error(`leak: before ${JSON.stringify(before)}, after ${JSON.stringify(now)}`)
              )
            }
          }),
        expectPortFree: (port) =>
          Effect.suspend(() => {
            return network.listeners.has(port) ? Effect.fail(new Error(`port ${port} is not free`)) : Effect.void
          }),
        simulated: true,
        exhaust: (exhausted) =>
          Effect.sync(() => {
            network.exhausted = exhausted
          }),
        now: () => world.now,
        // In the world, one command after the other: each act is the next step of the run.
        execute: (effect) => {
          pending = effect
          return Promise.resolve()
        },
        playAll: (model, real, played) =>
          Effect.gen(function*() {
            for (const command of played) {
              if (!command.check(model)) continue
              void command.run(model, real)
              const act = pending
              pending = undefined
              if (act !== undefined) yield* act
            }
          })
      }
      const run = Effect.provide(play(harness, commands, options, handler), context) as Effect.Effect<Outcome, Error>
      const failure = (cause: unknown) =>
        new SimulationFailure({ seed: options.seed, trace: world.trace.digest, lines: world.trace.lines, cause })
      let exit: Exit.Exit<Outcome, Error>
      try {
        exit = sim.run(run)
      } catch (error) {
        return Effect.fail(failure(error))
      }
      return Exit.match(exit, {
        onFailure: (cause) => Effect.fail(failure(Cause.squash(cause))),
        onSuccess: (outcome) =>
          Effect.succeed<SimulatedOutcome>({
            ...outcome,
            seed: options.seed,
            trace: world.trace.digest,
            steps: world.steps,
            virtualMillis: world.now
          })
      })
    }))
