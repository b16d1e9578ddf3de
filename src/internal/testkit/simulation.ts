/**
 * The simulation runner: a scenario played by the same runner as on loopback, inside a simulated
 * world (`internal/sim`) where every socket is simulated, every timer is on virtual time and every
 * interleaving is chosen by a seed; and the property over many generated runs, with the failing
 * run's own trace kept for its report.
 */
import { callerServices } from "#line/sim"
import { Cause, Data, Effect, Exit } from "effect"
import type { Scope } from "effect"
import * as fc from "fast-check"
import type {
  Holdings,
  Network,
  Simulated,
  SimulatedOutcome,
  SimulationOptions,
  SimulationReport,
  SimulationRunOptions,
  Strategy,
  Target
} from "../../TestKit.js"
import * as Sim from "../sim/run.js"
import * as Leaks from "./leaks.js"
import { echo } from "./protocol.js"
import type { Harness } from "./runner.js"
import { play } from "./runner.js"
import * as Scenarios from "./scenario.js"

/**
 * A simulated run broke an invariant, or could not end (a deadlock, a livelock): the error, the
 * seed of its world, its trace hash, and the last events of its trace.
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
    return `${causeText(this.cause)} (simulation seed ${this.seed}, trace ${this.trace})\n` +
      `last events:\n  ${this.lines.slice(-30).join("\n  ")}`
  }
}

const causeText = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

/** @internal */
export const random: Strategy = { _tag: "Random" }

/** @internal */
export const pct = (options: { readonly depth?: number; readonly steps?: number } = {}): Strategy => ({
  _tag: "PCT",
  depth: options.depth ?? 3,
  steps: options.steps ?? 1000
})

/** @internal */
export const formatStrategy = (strategy: Strategy): string =>
  strategy._tag === "Random" ? "random" : `pct(depth ${strategy.depth}, ${strategy.steps} steps)`

/** @internal */
export const network = (): fc.Arbitrary<Network> =>
  fc.record({
    receiveBuffer: fc.constantFrom(1024, 8192, 65536, 262144),
    sendBuffer: fc.constantFrom(1024, 16384, 65536),
    maxRead: fc.constantFrom(64, 1460, 65536),
    somaxconn: fc.constantFrom(1, 4, 4096)
  })

/** @internal */
export const simulation = (options: SimulationRunOptions<any, any> = {}): fc.Arbitrary<Simulated> =>
  fc.record({
    scenario: Scenarios.scenario(options, true),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    network: network()
  })

/** @internal */
export const simulate = <E = never, R = never>(
  run: Simulated,
  options: SimulationOptions & Target<E, R> = {}
): Effect.Effect<SimulatedOutcome, SimulationFailure, Exclude<R, Scope.Scope>> =>
  Effect.flatMap(Effect.context<Exclude<R, Scope.Scope>>(), (context) =>
    Effect.suspend(() => {
      const sim = new Sim.Simulation({
        seed: run.seed,
        ...(run.network === undefined ? {} : { net: run.network }),
        ...(options.keepTrace === undefined ? {} : { keepTrace: options.keepTrace }),
        ...(options.strategy === undefined ? {} : { strategy: options.strategy })
      })
      const { network, world } = sim
      const holdings = Effect.sync((): Holdings => ({
        sockets: network.open.size,
        handles: {
          TCPServerWrap: network.listeners.size,
          TCPSocketWrap: network.open.size,
          Timeout: world.timersPending
        }
      }))
      const harness: Harness = {
        holdings,
        // Virtual time: a second of polling costs nothing.
        expectNoLeaks: (before) => Leaks.settleTo(holdings, before, "1 second"),
        expectPortFree: (port) =>
          Effect.suspend(() =>
            network.listeners.has(port) ? Effect.fail(new Error(`port ${port} is not free`)) : Effect.void
          ),
        exhaust: (exhausted) =>
          Effect.sync(() => {
            network.exhausted = exhausted
          }),
        serverSocketsOpen: () => {
          let n = 0
          for (const socket of network.open) if (socket.name.startsWith("s")) n++
          return n
        },
        // Virtual time is exact: nothing may end a millisecond late.
        deadlineMargin: 0,
        notice: "exact"
      }
      const played = Effect.provide(play(harness, run.scenario, options), callerServices(context))
      const failure = (cause: unknown) =>
        new SimulationFailure({ seed: run.seed, trace: world.trace.digest, lines: world.trace.lines, cause })
      let exit: Exit.Exit<unknown, unknown>
      try {
        exit = sim.run(played)
      } catch (error) {
        return Effect.fail(failure(error))
      }
      return Exit.match(exit, {
        onFailure: (cause) => Effect.fail(failure(Cause.squash(cause))),
        onSuccess: (outcome) =>
          Effect.succeed<SimulatedOutcome>({
            ...(outcome as SimulatedOutcome),
            seed: run.seed,
            trace: world.trace.digest,
            steps: world.steps,
            virtualMillis: world.now
          })
      })
    }))

/**
 * The property over `runs` generated runs, checked with fast-check from `seed` (or, with `path`,
 * the one run that path names: a replay), and its report. The failure reported is the shrunk
 * counterexample's, and so is its trace: replayed, it prints the same.
 *
 * @internal
 */
export const runSimulation = <E = never, R = never>(
  options: SimulationRunOptions<E, R> = {}
): Effect.Effect<SimulationReport, never, Exclude<R, Scope.Scope>> =>
  Effect.flatMap(Effect.context<Exclude<R, Scope.Scope>>(), (context) =>
    Effect.sync(() => {
      const protocol = options.protocol ??
        (options.handler === undefined && options.serve === undefined ? echo : undefined)
      const generation = protocol === undefined ? options : { ...options, protocol }
      const property = fc.property(simulation(generation), (run) => {
        const exit = Effect.runSyncExit(Effect.provide(simulate(run, options), context))
        if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
      })
      const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31)
      const started = performance.now()
      const details = fc.check(property, {
        numRuns: options.runs ?? 1000,
        seed,
        ...(options.path === undefined ? {} : { path: options.path, endOnFailure: true })
      })
      const seconds = (performance.now() - started) / 1000
      const report = {
        runs: details.numRuns,
        failures: details.failed ? 1 : 0,
        seed: details.seed,
        strategy: formatStrategy(options.strategy ?? random),
        seconds,
        scenariosPerSecond: details.numRuns / seconds
      }
      if (!details.failed) return report
      const run = details.counterexample?.[0]
      const error = details.errorInstance
      const failure = error instanceof SimulationFailure ? error : undefined
      return {
        ...report,
        failure: {
          error: failure === undefined ? causeText(error) : causeText(failure.cause),
          reason: failure === undefined
            ? "Defect"
            : hasReason(failure.cause)
            ? failure.cause.reason
            : failure.cause instanceof Sim.Stuck
            ? "Stuck"
            : "Defect",
          trace: failure?.trace ?? "",
          scenario: run === undefined ? "" : Scenarios.format(run.scenario),
          world: { seed: run?.seed ?? 0, network: run?.network ?? {} },
          lastEvents: failure?.lines.slice(-20) ?? [],
          path: details.counterexamplePath ?? "",
          shrinks: details.numShrinks
        }
      }
    }))

const hasReason = (cause: unknown): cause is { readonly reason: string } =>
  typeof cause === "object" && cause !== null && "reason" in cause && typeof cause.reason === "string"
