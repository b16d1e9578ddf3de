/**
 * Property tests of a server's shutdown, for any protocol: scenarios of peers that send,
 * half-close, stall, reset and leave while the server is told to shut down at any point, played
 * against your handler (or a server of your own) on real loopback sockets or on a simulated
 * network driven by a seed, and checked against a model of your protocol. Also the pieces:
 * test peers, the model, leak checks.
 *
 * What a run checks, for any protocol: every connection ends by the shutdown deadline plus a
 * stated margin; no fiber, socket or scope is left behind; each handler's finalizers run exactly
 * once; the drain notice reaches every handler still running when shutdown begins. With a model of
 * the protocol (a {@link Protocol}), also: each peer gets a complete answer and then a FIN, or a
 * cut-off answer and then a reset (only once the deadline passed), never a partial answer followed
 * by a FIN. See docs/testing.md and docs/simulation.md.
 *
 * @since 0.1.0
 */
import type { DurationInput } from "#line/types"
import type { Effect, Scope } from "effect"
import type * as fc from "fast-check"
import * as Leaks from "./internal/testkit/leaks.js"
import * as Loopback from "./internal/testkit/loopback.js"
import * as Model_ from "./internal/testkit/model.js"
import * as Peers from "./internal/testkit/peers.js"
import * as Protocols from "./internal/testkit/protocol.js"
import * as Scenarios from "./internal/testkit/scenario.js"
import * as Simulation from "./internal/testkit/simulation.js"
import * as Verdict from "./internal/testkit/verdict.js"
import type * as Transport from "./internal/transport.js"
import type * as Server from "./Server.js"

// ---------------------------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------------------------

/**
 * A peer's socket: a `node:net` socket (these are its members a test may use), or the simulated
 * network's.
 *
 * @since 0.1.0
 * @category peers
 */
export interface PeerSocket extends Transport.Socket {}

/**
 * A test peer on plain `node:net` (or the simulated network): nothing is read until
 * {@link Peer.startReading}, so a peer that never calls it is a stalled reader.
 *
 * @since 0.1.0
 * @category peers
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
 * Connects a {@link Peer} to `host:port` (127.0.0.1 by default); the scope destroys its socket.
 *
 * @since 0.1.0
 * @category peers
 */
export const connect: (port: number, host?: string) => Effect.Effect<Peer, Error, Scope.Scope> = Peers.connect

// ---------------------------------------------------------------------------------------------
// Protocols
// ---------------------------------------------------------------------------------------------

/**
 * The model of one connection of a protocol: fed what the peer sends, it says what a complete
 * answer is. One is made per peer ({@link Protocol.conversation}).
 *
 * @since 0.1.0
 * @category protocols
 */
export interface Conversation {
  /** The peer sent `chunk`, after everything fed before. */
  readonly feed: (chunk: Uint8Array) => void
  /**
   * The answers the bytes fed so far have earned, one per request, in order. While the peer's
   * input is open, everything it receives must be a prefix of their concatenation.
   */
  readonly expected: () => ReadonlyArray<Uint8Array>
  /**
   * The whole answer once the peer has half-closed after the bytes fed: what it must receive,
   * exactly, before the server's FIN. Default: the answers of `expected()`, concatenated.
   */
  readonly complete?: () => Uint8Array
  /**
   * Whether the server ended the conversation by the protocol's own rules (an error answer, say):
   * it then sends the answers of `expected()` and its FIN without waiting for the peer's
   * half-close. Default: never.
   */
  readonly closed?: () => boolean
}

/**
 * A protocol, as the test kit checks it: how to model one connection, what a server of it says
 * when it ends a conversation because it shuts down, and what its requests look like.
 *
 * @since 0.1.0
 * @category protocols
 */
export interface Protocol {
  /** Named in a failure's message. */
  readonly name: string
  /** A fresh model of one connection. */
  readonly conversation: () => Conversation
  /**
   * What a server of this protocol sends when the drain notice ends a conversation, after whole
   * answers to some of the requests and before its FIN (`BYE\n`, or nothing at all): whole
   * answers, then this, then a FIN is then a complete answer. Absent: a server of it ends a
   * conversation only at the peer's half-close (or its own rules, `closed`), or cuts it off at the
   * deadline.
   */
  readonly farewell?: Uint8Array
  /** Payloads the scenarios send, of at most `maxLength` bytes or so: the protocol's requests. Default: any bytes. */
  readonly payload?: (maxLength: number) => fc.Arbitrary<Uint8Array>
}

/**
 * A protocol whose whole answer to everything a peer sent is `answer(sent)`, a pure function: a
 * server of it answers as the bytes arrive and ends a conversation only at the peer's
 * half-close. What arrives before then must be a prefix of `answer(sent so far)`, so `answer` must
 * only ever extend its earlier answers as more is sent (any byte-wise transform does, an answer
 * per whole line does); otherwise write a {@link Conversation}.
 *
 * @since 0.1.0
 * @category protocols
 */
export const fromAnswer: (
  name: string,
  answer: (sent: Uint8Array) => Uint8Array,
  options?: { readonly payload?: (maxLength: number) => fc.Arbitrary<Uint8Array> }
) => Protocol = Protocols.fromAnswer

/**
 * The echo: every byte back, unchanged, then a FIN after the peer's. The protocol of the built-in
 * echo, and the default when no handler is given.
 *
 * @since 0.1.0
 * @category protocols
 */
export const echo: Protocol = Protocols.echo

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/**
 * One step of a scenario. `peer` indexes the peers opened so far (modulo their count); a step
 * that cannot apply (no peer yet, a peer already reset, a second shutdown) is skipped.
 *
 * @since 0.1.0
 * @category scenarios
 */
export type Operation =
  /** Connects a peer, reading what it receives. */
  | { readonly _tag: "Open" }
  /** The recipe's client: a new peer sends `data`, half-closes, and reads its answer. */
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
  /**
   * The process ends at once, while the server serves or drains: a second signal during the
   * shutdown, SIGQUIT, an exception no one catches. What the process runs on its way out is what
   * this plays: every connection whose answer is not whole is reset, now. In a real process
   * nothing runs after it; in the run's, which goes on, the shutdown then begins (if it had not)
   * and ends as it would.
   */
  | { readonly _tag: "ForceShutdown" }
  /**
   * The fiber that holds the server dies of a defect while it serves: its scope closes with the
   * defect, which begins the shutdown, as graceful as one asked for.
   */
  | { readonly _tag: "ServerDefect" }
  /** Lets time pass; once shutdown began, enough of it crosses the deadline. */
  | { readonly _tag: "Wait"; readonly millis: number }

/**
 * A scenario: operations played in order.
 *
 * @since 0.1.0
 * @category scenarios
 */
export interface Scenario {
  readonly operations: ReadonlyArray<Operation>
}

/**
 * What the arbitraries generate. `shutdownTimeout` and `cleanupTimeout` must be the server's: a
 * long `Wait` is sized to cross them.
 *
 * @since 0.1.0
 * @category scenarios
 */
export interface Generation {
  /** Payloads up to this many bytes. Default 16 KiB: small enough for loopback's buffers, large enough for several reads. */
  readonly maxChunk?: number
  /** Default 24. */
  readonly maxOperations?: number
  /** Default 400 ms. */
  readonly shutdownTimeout?: DurationInput
  /** Default 1 s (the server's default). */
  readonly cleanupTimeout?: DurationInput
  /** Whose requests the payloads are ({@link Protocol.payload}). Default: any bytes. */
  readonly protocol?: Protocol | undefined
  /**
   * Also the forced and crash paths: `ForceShutdown` and `ServerDefect`. Default false: they
   * change what every seed generates, and a failure's seed and path replay only with the
   * generation it was found with.
   */
  readonly crashes?: boolean | undefined
}

/**
 * Operations, weighted so that most scenarios hold a peer that sends and half-closes while it
 * reads, before shutdown (the one the key invariant is about), with stalls, resets and waits rarer.
 * Payloads are the protocol's requests, or bytes of every length up to `maxChunk` in a seeded
 * pattern in which every byte depends on its position, so that a byte out of place shows.
 *
 * @since 0.1.0
 * @category scenarios
 */
export const operation = (generation: Generation = {}): fc.Arbitrary<Operation> => Scenarios.operation(generation)

/**
 * Scenarios that start with a peer open, for loopback (no simulation-only fault). A scenario
 * prints as its {@link format}.
 *
 * @since 0.1.0
 * @category scenarios
 */
export const scenario = (generation: Generation = {}): fc.Arbitrary<Scenario> => Scenarios.scenario(generation)

/**
 * A scenario of these operations, printed as its {@link format}.
 *
 * @since 0.1.0
 * @category scenarios
 */
export const makeScenario: (operations: ReadonlyArray<Operation>) => Scenario = Scenarios.make

/**
 * A scenario in one line: `Open, Send(0, 113 bytes), HalfClose(0), Shutdown`.
 *
 * @since 0.1.0
 * @category scenarios
 */
export const format: (scenario: Scenario) => string = Scenarios.format

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/**
 * What a peer has done, as the model knows it.
 *
 * @since 0.1.0
 * @category model
 */
export interface PeerModel {
  sent: number
  halfClosed: "no" | "while serving" | "while draining"
  reading: boolean
  /** It reset or closed its own connection: only the consistency of what it received is checked. */
  reset: boolean
  /** Its complete, non-empty answer and FIN were checked when it half-closed (the key invariant). */
  verified: boolean
  /** It connected while the server's descriptors had run out: never served, its connection just ends. */
  refused: boolean
}

/**
 * What the server and its peers should be doing: the model a scenario is played against.
 *
 * @since 0.1.0
 * @category model
 */
export interface Model {
  readonly peers: Array<PeerModel>
  phase: "serving" | "draining" | "stopped"
  /** Time waited since shutdown began, in the scenario's own account. */
  waitedMillis: number
  /** The drain delay plus `shutdownTimeout + cleanupTimeout`: past it, the server must be gone. */
  readonly deadlineMillis: number
  /** The server's descriptors have run out (a simulated fault). */
  exhausted: boolean
}

/**
 * The model at the start of a run, whose deadline is `deadlineMillis`.
 *
 * @since 0.1.0
 * @category model
 */
export const initialModel: (deadlineMillis: number) => Model = Model_.initialModel

/**
 * Whether `op` applies in `model` (its precondition). Pure, with {@link step}: a scenario replayed
 * against the model alone tells what a generator produces.
 *
 * @since 0.1.0
 * @category model
 */
export const applies: (model: Model, op: Operation) => boolean = Model_.applies

/**
 * The model after `op` (which {@link applies}), in place.
 *
 * @since 0.1.0
 * @category model
 */
export const step: (model: Model, op: Operation) => void = Model_.step

// ---------------------------------------------------------------------------------------------
// Leak checks
// ---------------------------------------------------------------------------------------------

/**
 * What the process holds: socket descriptors (from `/proc/self/fd` where there is one; -1 where
 * there is none) and Node's active handles by type.
 *
 * @since 0.1.0
 * @category leak checks
 */
export interface Holdings {
  readonly sockets: number
  readonly handles: Readonly<Record<string, number>>
}

/**
 * Counts what the process holds now.
 *
 * @since 0.1.0
 * @category leak checks
 */
export const holdings: Effect.Effect<Holdings> = Leaks.holdings

/**
 * Waits (at most `within`, 5 s by default) until the process holds no more sockets, TCP handles or
 * timers than `before`; fails with both snapshots if it still does. Closing is asynchronous in
 * Node, so a check right after a release must poll rather than look once.
 *
 * @since 0.1.0
 * @category leak checks
 */
export const expectNoLeaks: (before: Holdings, within?: DurationInput) => Effect.Effect<void, Error> =
  Leaks.expectNoLeaks

/**
 * Binds `port` on 127.0.0.1 with plain Node and lets it go: fails unless the kernel has released
 * it (a listener closed, no socket of the port left in a state that blocks binding).
 *
 * @since 0.1.0
 * @category leak checks
 */
export const expectPortFree: (port: number) => Effect.Effect<void, Error> = Leaks.expectPortFree

// ---------------------------------------------------------------------------------------------
// Running a scenario
// ---------------------------------------------------------------------------------------------

/**
 * What a scenario runs against, and the protocol it is judged by.
 *
 * @since 0.1.0
 * @category running
 */
export interface Target<E = never, R = never> {
  /**
   * The handler under test, served by `Server.make` with the run's options. Default: the built-in
   * echo. The run wraps it to watch its life (start, drain notice, end, finalizers); the
   * connection it gets is the server's own.
   */
  readonly handler?: Server.Handler<E, R> | undefined
  /**
   * Or a server of your own making on this library (`PlatformSocketServer`, an `RpcServer` on
   * it): started with the run's options in the scope given, shut down when that scope closes,
   * listening on the port it returns. The run cannot see its handlers: the finalizer and drain
   * notice checks apply to a `handler` only.
   */
  readonly serve?:
    | ((options: Server.Options) => Effect.Effect<{ readonly port: number }, unknown, R | Scope.Scope>)
    | undefined
  /**
   * The protocol's model. Default: the echo when neither `handler` nor `serve` is given; none
   * otherwise, and then only the protocol-free invariants are checked.
   */
  readonly protocol?: Protocol | undefined
}

/**
 * Options of a run: the server's, and the margins it is judged with.
 *
 * @since 0.1.0
 * @category running
 */
export interface RunOptions extends Server.Options {
  /** How long any wait may take before it is called a hang. Default 10 s. */
  readonly margin?: DurationInput
  /**
   * How late past its deadline (the drain delay, `shutdownTimeout` and `cleanupTimeout`) the
   * shutdown may return and a connection may end. Default: 0 on the simulation, where time is
   * virtual and exact; `margin` on loopback, where the machine's load decides.
   */
  readonly deadlineMargin?: DurationInput
}

/**
 * What a run saw.
 *
 * @since 0.1.0
 * @category running
 */
export interface Outcome {
  /** From the start of the shutdown to its return, on the run's clock. */
  readonly shutdownMillis: number
  /** Peers whose complete answer was checked when they half-closed (the key invariant applied). */
  readonly verified: number
  readonly peers: ReadonlyArray<{
    readonly sent: number
    readonly received: number
    readonly halfClosed: PeerModel["halfClosed"]
    readonly ending: "eof" | "reset" | "closed"
  }>
  /** With a `handler`: how many the server started, and how many of those got the drain notice. */
  readonly handlers: { readonly started: number; readonly notified: number } | undefined
}

/**
 * Which invariant a run broke (see {@link ShutdownViolation}).
 *
 * @since 0.1.0
 * @category running
 */
export type ViolationReason = Verdict.ViolationReason

/**
 * A run broke an invariant: which one (`reason`), and what was seen (`detail`, also the message).
 *
 * @since 0.1.0
 * @category running
 */
export const ShutdownViolation: typeof Verdict.ShutdownViolation = Verdict.ShutdownViolation

/**
 * @since 0.1.0
 * @category running
 */
export type ShutdownViolation = Verdict.ShutdownViolation

/**
 * Plays `scenario` on real loopback sockets against the target in `options` (the built-in echo by
 * default) with the server's own options, and checks every step and the end against the model.
 * Shutdown begins at the `Shutdown` step, or after the last one. Fails with the first
 * {@link ShutdownViolation}.
 *
 * @since 0.1.0
 * @category running
 */
export const checkShutdown: <E = never, R = never>(
  scenario: Scenario,
  options?: RunOptions & Target<E, R>
) => Effect.Effect<Outcome, ShutdownViolation, Exclude<R, Scope.Scope>> = Loopback.checkShutdown

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
 * How the simulated world chooses what happens next among what is ready: `Random` (uniformly, by
 * the seed), or `PCT`, probabilistic concurrency testing (see {@link pct}).
 *
 * @since 0.1.0
 * @category simulation
 */
export type Strategy =
  | { readonly _tag: "Random" }
  | { readonly _tag: "PCT"; readonly depth: number; readonly steps: number }

/**
 * The seeded random scheduler: at each step, any ready event, uniformly.
 *
 * @since 0.1.0
 * @category simulation
 */
export const random: Strategy = Simulation.random

/**
 * Probabilistic concurrency testing (as in Microsoft's Coyote and AWS's Shuttle): every source of
 * events (the fiber turns, each direction of each connection, each socket's events) gets a
 * priority drawn from the seed, and the ready source of highest priority always goes first; at
 * `depth - 1` steps drawn among the first `steps`, the source about to go drops below all others.
 * A bug that `depth` orderings decide is found in each run with probability at least
 * 1 / (n * steps^(depth - 1)) for n sources, in a run of at most `steps` steps. Defaults: depth 3,
 * 1,000 steps (docs/simulation.md says why).
 *
 * @since 0.1.0
 * @category simulation
 */
export const pct: (options?: { readonly depth?: number; readonly steps?: number }) => Strategy = Simulation.pct

/**
 * A simulated run's options: the run's, the trace lines a failure keeps, and the world's strategy.
 *
 * @since 0.1.0
 * @category simulation
 */
export interface SimulationOptions extends RunOptions {
  /** Trace lines kept for a failure to print. Default 200. */
  readonly keepTrace?: number
  /** Default {@link random}. */
  readonly strategy?: Strategy
}

/**
 * One simulated run as generated: its scenario, the seed of its world (which decides the order of
 * every event and how writes are split into reads), and its network.
 *
 * @since 0.1.0
 * @category simulation
 */
export interface Simulated {
  readonly scenario: Scenario
  readonly seed: number
  readonly network?: Network
}

/**
 * What a simulated run saw: its {@link Outcome}, the seed of its world, a hash of its whole event
 * trace (the same seed and scenario give the same hash), how many events it played and how much
 * virtual time passed.
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
 * A simulated run broke an invariant (its `cause`, a {@link ShutdownViolation}) or could not end:
 * with the seed of its world, its trace hash and the last events of its trace.
 *
 * @since 0.1.0
 * @category simulation
 */
export const SimulationFailure: typeof Simulation.SimulationFailure = Simulation.SimulationFailure

/**
 * @since 0.1.0
 * @category simulation
 */
export type SimulationFailure = Simulation.SimulationFailure

/**
 * Networks to play on: small and large kernel buffers (a stalled reader stops the writer sooner or
 * later), reads cut small (a slow reader), and an accept queue of one (a burst of connections
 * overflows it, and their SYNs are retried).
 *
 * @since 0.1.0
 * @category simulation
 */
export const network: () => fc.Arbitrary<Network> = Simulation.network

/**
 * Simulated runs: scenarios with the faults only a simulation can play, a world seed, a
 * {@link network}. Give each to {@link simulate} with the same `shutdownTimeout` and
 * `cleanupTimeout`.
 *
 * @since 0.1.0
 * @category simulation
 */
export const simulation = (generation: Generation = {}): fc.Arbitrary<Simulated> => Simulation.simulation(generation)

/**
 * Plays `run` on the simulated network, with the same runner and invariants as
 * {@link checkShutdown}: the same server code on simulated sockets, every timer on virtual time,
 * every interleaving chosen by the run's seed. A run of seconds of virtual time takes
 * milliseconds, and the same seed replays it exactly.
 *
 * @since 0.1.0
 * @category simulation
 */
export const simulate: <E = never, R = never>(
  run: Simulated,
  options?: SimulationOptions & Target<E, R>
) => Effect.Effect<SimulatedOutcome, SimulationFailure, Exclude<R, Scope.Scope>> = Simulation.simulate

/**
 * Options of {@link runSimulation}: what to generate, how each run is played, against what, and
 * how many runs from which seed.
 *
 * @since 0.1.0
 * @category simulation
 */
export interface SimulationRunOptions<E = never, R = never> extends SimulationOptions, Generation, Target<E, R> {
  /** Runs to generate. Default 1,000. */
  readonly runs?: number
  /** fast-check's seed. Default: a random one (the report says which). */
  readonly seed?: number
  /** With the seed, the path a failure reported: replays that one run (its shrunk scenario). */
  readonly path?: string
}

/**
 * What {@link runSimulation} found: how many runs, whether one failed, from which seed, how fast,
 * and the failure shrunk: its error, its scenario and world, the trace hash and last events of
 * that run (a replay from `seed` and `failure.path` plays it again and has the same hash).
 *
 * @since 0.1.0
 * @category simulation
 */
export interface SimulationReport {
  readonly runs: number
  readonly failures: number
  readonly seed: number
  readonly strategy: string
  readonly seconds: number
  readonly scenariosPerSecond: number
  readonly failure?: {
    readonly error: string
    /** A {@link ViolationReason}; `Stuck` for a run that could not end, `Defect` for anything else thrown. */
    readonly reason: string
    readonly trace: string
    readonly scenario: string
    readonly world: { readonly seed: number; readonly network: Network }
    readonly lastEvents: ReadonlyArray<string>
    readonly path: string
    readonly shrinks: number
  }
}

/**
 * The shutdown property over many simulated runs, without a test runner: generates `runs`
 * scenarios, plays each with {@link simulate}, shrinks the first failure, and reports. What
 * `effect-tcp-echo simulate` runs.
 *
 * @since 0.1.0
 * @category simulation
 */
export const runSimulation: <E = never, R = never>(
  options?: SimulationRunOptions<E, R>
) => Effect.Effect<SimulationReport, never, Exclude<R, Scope.Scope>> = Simulation.runSimulation

/**
 * This module as a namespace, the shape the root entry point gives it:
 * `import { TestKit } from "effect-tcp-echo/TestKit"`, as well as
 * `import * as TestKit from "effect-tcp-echo/TestKit"`.
 *
 * @since 0.1.0
 */
export * as TestKit from "./TestKit.js"
