/**
 * A simulation: a world, its network, and the transport that puts the server on them. `run`
 * plays an Effect to its end inside the world, synchronously: its fibers are scheduled by the
 * world, its clock is the world's, and every socket it opens is simulated.
 */
import { interruptFork, poll } from "#line/runtime"
import * as Line from "#line/sim"
import { Cause, Effect, Exit } from "effect"
import type * as Transport from "../transport.js"
import { CurrentTransport } from "../transport.js"
import * as Net from "./net.js"
import type { Strategy } from "./world.js"
import { World } from "./world.js"

/**
 * How a simulation is set up.
 *
 * @internal
 */
export interface Setup {
  readonly seed: number
  readonly net?: Partial<Net.NetOptions>
  /** Trace lines kept to print on failure. Default 200. */
  readonly keepTrace?: number
  /** Log records of the simulated server: at this level and above. Default none. */
  readonly logLevel?: Line.LogLevel
  /** How the world chooses what happens next. Default `Random`. */
  readonly strategy?: Strategy
}

/**
 * What stopped a run that did not end: nothing left that could happen (everything waits:
 * a deadlock), or a budget of steps spent (something keeps busy: a livelock).
 *
 * @internal
 */
export class Stuck extends Error {
  constructor(readonly stop: "quiet" | "budget", readonly trace: ReadonlyArray<string>) {
    super(
      stop === "quiet"
        ? "the simulation is stuck: everything waits, nothing can happen"
        : "the simulation ran out of steps"
    )
  }
}

/** @internal */
export class Simulation {
  readonly world: World
  readonly network: Net.Network
  readonly transport: Transport.Transport
  private readonly logLevel: Line.LogLevel

  constructor(setup: Setup) {
    this.world = new World(setup.seed, setup.keepTrace ?? 200, setup.strategy)
    this.network = new Net.Network(this.world, { ...Net.defaultNetOptions, ...setup.net })
    this.logLevel = setup.logLevel ?? Line.silent
    const { network, world } = this
    this.transport = {
      createServer: (options) => network.createServer(options) as unknown as Transport.Server,
      connect: (options) => network.connect(options),
      now: () => world.now,
      schedule: (millis, fire) => world.schedule(millis, "timer", fire),
      endWasReset: (socket) => (socket as Net.SimSocket).wasReset
    }
  }

  /** `effect` in this world: its fibers, clock and transport are the world's. */
  within<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Line.within(Effect.provideService(effect, CurrentTransport, this.transport), {
      clock: this.world.clock,
      scheduler: this.world.scheduler,
      logLevel: this.logLevel
    })
  }

  /**
   * Plays `effect` to its end, synchronously, and returns how it ended. Throws `Stuck` when it
   * cannot end: nothing else can happen while it waits, or it kept the world busy too long.
   */
  run<A, E>(effect: Effect.Effect<A, E>, budget?: number): Exit.Exit<A, E> {
    const fiber = Effect.runFork(this.within(effect))
    const stop = this.world.run(() => poll(fiber) !== undefined, budget)
    const exit = poll(fiber)
    if (exit !== undefined) return exit
    // What follows in the trace is the interruption's own cleanup, not the run.
    this.world.trace.add(this.world.now, stop === "budget" ? "(out of steps: interrupted)" : "(stuck: interrupted)")
    interruptFork(fiber)
    this.world.run(() => poll(fiber) !== undefined, 100_000)
    throw new Stuck(stop === "budget" ? "budget" : "quiet", this.world.trace.lines)
  }

  /** Like `run`, for an effect that must succeed: its failure is thrown, as its squashed cause. */
  runSync<A, E>(effect: Effect.Effect<A, E>, budget?: number): A {
    const exit = this.run(effect, budget)
    if (Exit.isSuccess(exit)) return exit.value
    throw Cause.squash(exit.cause)
  }
}
