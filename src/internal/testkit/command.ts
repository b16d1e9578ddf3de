/**
 * `effect-tcp-echo simulate`: the shutdown property over many simulated runs, from a command line.
 * Reads its arguments, loads the user's handler module, runs `TestKit.runSimulation`, and prints
 * one JSON line: the runs, the failures, the seed and, on failure, the failing run's trace hash,
 * its shrunk scenario, its error and the command that replays it (which prints the same hash).
 * A bad argument gets one line on stderr. Exit status: 0 held, 1 failed, 2 bad arguments.
 */
import { Effect } from "effect"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import type { SimulationRunOptions, Strategy, Target } from "../../TestKit.js"
import * as Checked from "../checked.js"
import * as Simulation from "./simulation.js"

/** @internal */
export const usage = "usage: simulate [--runs N] [--seed S] [--handler MODULE[#EXPORT]] [--path P]\n" +
  "                [--strategy random|pct] [--depth D] [--steps K]\n" +
  "                [--shutdown-timeout MS] [--cleanup-timeout MS] [--crashes]\n" +
  "MODULE exports (default, or EXPORT) a Server.Handler, or { handler | serve, protocol };\n" +
  "beside a handler, an export named protocol is its model (a TestKit.Protocol).\n" +
  "--crashes adds the forced and crash paths (ForceShutdown, ServerDefect) to the scenarios."

/** How the command was run, and where it writes: the process's streams, or a test's. */
interface Io {
  /** The command line a replay repeats, before its own flags: `effect-tcp-echo simulate`. */
  readonly invokedAs: string
  readonly out: (line: string) => void
  readonly err: (line: string) => void
  /** Where a relative `--handler` is resolved from. */
  readonly cwd: string
}

/** A bad argument: its one line. */
class Usage {
  constructor(readonly message: string) {}
}

const defaults = { runs: 1000, shutdownTimeout: 400, cleanupTimeout: 500, depth: 3, steps: 1000 } as const

const integer = (name: string, text: string | undefined, min: number, max: number): number | undefined => {
  if (text === undefined) return undefined
  const value = /^-?\d+$/.test(text) ? Number(text) : Number.NaN
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new Usage(`--${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(text)}`)
  }
  return value
}

/** The arguments, checked: every one that changes a run is kept, for the replay to repeat. */
const parse = (argv: ReadonlyArray<string>) => {
  let values
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        runs: { type: "string" },
        seed: { type: "string" },
        handler: { type: "string" },
        path: { type: "string" },
        strategy: { type: "string" },
        depth: { type: "string" },
        steps: { type: "string" },
        "shutdown-timeout": { type: "string" },
        "cleanup-timeout": { type: "string" },
        crashes: { type: "boolean" },
        help: { type: "boolean" }
      },
      strict: true,
      allowPositionals: false
    }).values
  } catch (error) {
    throw new Usage(error instanceof Error ? error.message : String(error))
  }
  const strategyName = values.strategy ?? "random"
  if (strategyName !== "random" && strategyName !== "pct") {
    throw new Usage(`--strategy must be random or pct, not ${JSON.stringify(strategyName)}`)
  }
  if (strategyName === "random" && (values.depth !== undefined || values.steps !== undefined)) {
    throw new Usage("--depth and --steps go with --strategy pct")
  }
  if (values.path !== undefined && !/^\d+(:\d+)*$/.test(values.path)) {
    throw new Usage(`--path must look like 3:1:0, not ${JSON.stringify(values.path)}`)
  }
  if (values.path !== undefined && values.seed === undefined) throw new Usage("--path needs the --seed it came with")
  const strategy: Strategy = strategyName === "random"
    ? Simulation.random
    : Simulation.pct({
      depth: integer("depth", values.depth, 1, 100) ?? defaults.depth,
      steps: integer("steps", values.steps, 1, 1_000_000_000) ?? defaults.steps
    })
  return {
    help: values.help === true,
    crashes: values.crashes === true,
    runs: integer("runs", values.runs, 1, 10_000_000) ?? defaults.runs,
    // fast-check takes 32-bit seeds: anything wider would be cut silently.
    seed: integer("seed", values.seed, -(2 ** 31), 2 ** 31 - 1),
    path: values.path,
    handler: values.handler,
    strategy,
    shutdownTimeout: integer("shutdown-timeout", values["shutdown-timeout"], 0, 3_600_000) ?? defaults.shutdownTimeout,
    cleanupTimeout: integer("cleanup-timeout", values["cleanup-timeout"], 0, 3_600_000) ?? defaults.cleanupTimeout
  }
}

type Parsed = ReturnType<typeof parse>

/**
 * The target a handler module names: its default export (or the one after `#`), a handler or a
 * `Target`; beside a handler, the module's `protocol` export is its model.
 */
const load = (spec: string, cwd: string): Effect.Effect<Target<unknown, never>, Usage> => {
  const hash = spec.lastIndexOf("#")
  const file = hash > 0 ? spec.slice(0, hash) : spec
  const name = hash > 0 ? spec.slice(hash + 1) : "default"
  return Effect.flatMap(
    Effect.tryPromise({
      try: () => import(pathToFileURL(path.resolve(cwd, file)).href) as Promise<Record<string, unknown>>,
      catch: (error) =>
        new Usage(
          `cannot load --handler ${file}: ${(error instanceof Error ? error.message : String(error)).split("\n")[0]}`
        )
    }),
    (module): Effect.Effect<Target<unknown, never>, Usage> => {
      const value = module[name]
      if (typeof value === "function") {
        const protocol = module.protocol
        return Effect.succeed({
          handler: value as NonNullable<Target<unknown, never>["handler"]>,
          ...(isProtocol(protocol) ? { protocol } : {})
        })
      }
      if (typeof value === "object" && value !== null && ("handler" in value || "serve" in value)) {
        return Effect.succeed(value as Target<unknown, never>)
      }
      return Effect.fail(
        new Usage(
          value === undefined
            ? `--handler ${spec}: the module has no export ${name}`
            : `--handler ${spec}: its export ${name} is neither a Server.Handler nor { handler | serve, protocol }`
        )
      )
    }
  )
}

const isProtocol = (value: unknown): value is NonNullable<Target["protocol"]> =>
  typeof value === "object" && value !== null && "conversation" in value && typeof value.conversation === "function"

/** The command line that replays the failure: the same flags that shape a run, and its seed and path. */
const replayOf = (io: Io, parsed: Parsed, seed: number, runPath: string): string =>
  [
    io.invokedAs,
    `--seed ${seed}`,
    `--path ${runPath}`,
    ...(parsed.handler === undefined ? [] : [`--handler ${parsed.handler}`]),
    ...(parsed.strategy._tag === "PCT"
      ? [`--strategy pct --depth ${parsed.strategy.depth} --steps ${parsed.strategy.steps}`]
      : []),
    ...(parsed.shutdownTimeout === defaults.shutdownTimeout ? [] : [`--shutdown-timeout ${parsed.shutdownTimeout}`]),
    ...(parsed.cleanupTimeout === defaults.cleanupTimeout ? [] : [`--cleanup-timeout ${parsed.cleanupTimeout}`]),
    ...(parsed.crashes ? ["--crashes"] : [])
  ].join(" ")

/**
 * Runs the command with `argv` (its own arguments, without the program's): the exit status.
 *
 * @internal
 */
export const run = (argv: ReadonlyArray<string>, io: Io): Effect.Effect<number> =>
  Effect.gen(function*() {
    let parsed: Parsed
    try {
      parsed = parse(argv)
    } catch (error) {
      if (error instanceof Usage) return yield* bad(io, error)
      throw error
    }
    if (parsed.help) {
      io.out(usage)
      return 0
    }
    const loaded: Checked.Checked<Target<unknown, never>, Usage> = parsed.handler === undefined
      ? Checked.valid({})
      : yield* Effect.match(load(parsed.handler, io.cwd), {
        onFailure: (usage) => Checked.invalid(usage),
        onSuccess: (target) => Checked.valid(target)
      })
    if (loaded._tag === "Invalid") return yield* bad(io, loaded.error)
    const options: SimulationRunOptions<unknown, never> = {
      ...loaded.value,
      runs: parsed.runs,
      ...(parsed.seed === undefined ? {} : { seed: parsed.seed }),
      ...(parsed.path === undefined ? {} : { path: parsed.path }),
      strategy: parsed.strategy,
      shutdownTimeout: `${parsed.shutdownTimeout} millis`,
      cleanupTimeout: `${parsed.cleanupTimeout} millis`,
      crashes: parsed.crashes
    }
    const report = yield* Simulation.runSimulation(options)
    const { failure, ...counts } = report
    io.out(JSON.stringify({
      ...counts,
      seconds: Number(report.seconds.toFixed(2)),
      scenariosPerSecond: Math.round(report.scenariosPerSecond),
      ...(failure === undefined ? {} : {
        trace: failure.trace,
        scenario: failure.scenario,
        world: failure.world,
        reason: failure.reason,
        error: failure.error,
        shrinks: failure.shrinks,
        lastEvents: failure.lastEvents,
        replay: replayOf(io, parsed, report.seed, failure.path)
      })
    }))
    return failure === undefined ? 0 : 1
  })

const bad = (io: Io, usage: Usage) =>
  Effect.sync(() => {
    io.err(`effect-tcp-echo simulate: ${usage.message} (--help for usage)`)
    return 2
  })
