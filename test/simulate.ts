/**
 * Deeper runs of the shutdown property on the simulated network than the suite makes:
 *
 *   npm run simulate -- --runs 20000 --seed 42 [--handler path/to/module.ts] [--path 3:1:0 --replay BAA:V]
 *
 * Prints one JSON line: runs, failures, the seed, the trace hash of the last run (the failing one,
 * if one failed), scenarios per second and, on failure, the shrunk counterexample, its error, the
 * last events of its trace, and the command that replays it exactly. A handler module
 * default-exports a `Server.Handler` (an echo-like one: the invariants compare each peer's bytes
 * back with what it sent); the built-in echo otherwise. Exits 1 when the property failed, 2 on bad
 * arguments.
 */
import { Effect, Exit, FastCheck as fc } from "effect"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import type { Server } from "../src/index.js"
import { TestKit } from "../src/index.js"

const usage = "usage: npm run simulate -- [--runs N] [--seed S] [--handler path/to/module] [--path P --replay R]"

const fail = (message: string): never => {
  process.stderr.write(`simulate: ${message}\n${usage}\n`)
  process.exit(2)
}

const integer = (name: string, text: string | undefined, min: number, fallback: number): number => {
  if (text === undefined) return fallback
  if (!/^-?\d+$/.test(text)) return fail(`--${name} must be an integer, not ${JSON.stringify(text)}`)
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value < min) {
    return fail(`--${name} must be an integer of at least ${min}, not ${text}`)
  }
  return value
}

const parsed = (() => {
  try {
    return parseArgs({
      options: {
        runs: { type: "string" },
        seed: { type: "string" },
        handler: { type: "string" },
        path: { type: "string" },
        replay: { type: "string" },
        help: { type: "boolean" }
      },
      strict: true,
      allowPositionals: false
    }).values
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error))
  }
})()
if (parsed.help === true) {
  process.stdout.write(`${usage}\n`)
  process.exit(0)
}
const runs = integer("runs", parsed.runs, 1, 1000)
const seed = integer("seed", parsed.seed, -(2 ** 31), Math.floor(Math.random() * 2 ** 31))
if (parsed.path !== undefined && !/^\d+(:\d+)*$/.test(parsed.path)) {
  fail(`--path must look like 3:1:0, not ${JSON.stringify(parsed.path)}`)
}

const loadHandler = async (): Promise<Server.Handler<unknown, never> | undefined> => {
  if (parsed.handler === undefined) return undefined
  const file = path.resolve(parsed.handler)
  let module: { default?: unknown }
  try {
    module = await import(pathToFileURL(file).href) as { default?: unknown }
  } catch (error) {
    return fail(`cannot load --handler ${parsed.handler}: ${error instanceof Error ? error.message : String(error)}`)
  }
  if (typeof module.default !== "function") {
    return fail(`--handler ${parsed.handler} must default-export a Server.Handler (a function of a connection)`)
  }
  return module.default as Server.Handler<unknown, never>
}

const timeouts = { shutdownTimeout: "400 millis", cleanupTimeout: "500 millis" } as const
// The commands' replayPath, printed with a failure: with its seed and path, the same shrunk run.
const generation: TestKit.Generation = parsed.replay === undefined
  ? timeouts
  : { ...timeouts, replayPath: parsed.replay }

const main = async () => {
  const handler = await loadHandler()
  let trace = ""
  let failure: TestKit.SimulationFailure | undefined
  const property = fc.property(TestKit.simulated(generation), (run) => {
    const exit = Effect.runSyncExit(
      TestKit.simulate(run.commands, { ...timeouts, seed: run.seed, network: run.network }, handler)
    )
    if (Exit.isSuccess(exit)) {
      trace = exit.value.trace
      return
    }
    const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
    failure = error
    if (error !== undefined) trace = error.trace
    throw error ?? new Error(String(exit.cause))
  })
  const started = performance.now()
  const details = fc.check(property, {
    numRuns: runs,
    seed,
    ...(parsed.path === undefined ? {} : { path: parsed.path, endOnFailure: true })
  })
  const seconds = (performance.now() - started) / 1000
  const shrunk = details.counterexample === null ? undefined : details.counterexample[0] as TestKit.Simulated
  const replayPath = shrunk === undefined ? undefined : TestKit.replayPathOf(shrunk.commands)
  const replay = details.failed
    ? `npm run simulate -- --seed ${details.seed} --path ${details.counterexamplePath}` +
      (replayPath === undefined ? "" : ` --replay '${replayPath}'`) +
      (parsed.handler === undefined ? "" : ` --handler ${parsed.handler}`)
    : undefined
  const line = {
    runs: details.numRuns,
    failures: details.failed ? 1 : 0,
    seed: details.seed,
    trace,
    seconds: Number(seconds.toFixed(2)),
    scenariosPerSecond: Math.round(details.numRuns / seconds),
    ...(details.failed
      ? {
        counterexample: shrunk === undefined ? undefined : String(shrunk.commands),
        world: shrunk === undefined ? undefined : { seed: shrunk.seed, network: shrunk.network },
        error: failure === undefined ? String(details.errorInstance) : String(failure.cause),
        lastEvents: failure?.lines.slice(-20),
        replay
      }
      : {})
  }
  process.stdout.write(JSON.stringify(line) + "\n")
  process.exit(details.failed ? 1 : 0)
}

main().catch((error) => fail(String(error)))
