/**
 * The simulation's own figures, as docs/testing.md and docs/simulation.md quote them: scenarios
 * per second for each of the four protocols the test kit is tested with, and runs-to-find for each
 * one's broken variant over seeds 1 to N, with the seeded random scheduler and with PCT.
 *
 *   npx tsx bench/simulation.ts [--throughput] [--find] [--seeds 20] [--max-runs 5000] [--runs 2000]
 *                               [--pct DEPTH:STEPS[,...]] [--only NAME]
 *
 * Runs-to-find counts the runs fast-check plays until the first failure (no shrinking). A variant
 * not found within --max-runs counts as that many, and is reported as not found. Prints one JSON
 * line per measurement, then a table. Bounded by its flags; not part of npm test.
 */
import { Effect, Exit, FastCheck as fc } from "effect"
import { parseArgs } from "node:util"
import forkingEcho from "../examples/forking-echo.js"
import lengthPrefixed, { protocol as framesProtocol, raceDrain } from "../examples/length-prefixed.js"
import rpc, { onLayer } from "../examples/rpc-protocol.js"
import uppercaseLines, { protocol as linesProtocol, withoutBye } from "../examples/uppercase-lines.js"
import { TestKit } from "../src/index.js"

const { values } = parseArgs({
  options: {
    throughput: { type: "boolean" },
    find: { type: "boolean" },
    seeds: { type: "string", default: "20" },
    "max-runs": { type: "string", default: "5000" },
    runs: { type: "string", default: "2000" },
    pct: { type: "string" },
    only: { type: "string" }
  }
})
const both = values.throughput !== true && values.find !== true
const seeds = Number(values.seeds)
const maxRuns = Number(values["max-runs"])
const runs = Number(values.runs)
const timeouts = { shutdownTimeout: "400 millis", cleanupTimeout: "500 millis" } as const

interface Case {
  readonly name: string
  readonly target: TestKit.Target<any, any>
  readonly broken: TestKit.Target<any, any>
}

const allCases: ReadonlyArray<Case> = [
  { name: "echo", target: {}, broken: { handler: forkingEcho, protocol: TestKit.echo } },
  {
    name: "uppercase lines",
    target: { handler: uppercaseLines, protocol: linesProtocol },
    broken: withoutBye
  },
  { name: "length-prefixed", target: { handler: lengthPrefixed, protocol: framesProtocol }, broken: raceDrain },
  { name: "@effect/rpc", target: rpc, broken: onLayer }
]

const cases = allCases.filter((c) => values.only === undefined || c.name === values.only)

const strategies: ReadonlyArray<TestKit.Strategy> = [
  TestKit.random,
  ...(values.pct ?? "3:1000").split(",").map((spec) => {
    const [depth, steps] = spec.split(":").map(Number)
    return TestKit.pct({ depth: depth!, steps: steps! })
  })
]

const property = (target: TestKit.Target<any, any>, strategy: TestKit.Strategy) =>
  fc.property(TestKit.simulation({ ...timeouts, protocol: target.protocol ?? TestKit.echo }), (run) => {
    // Each target needs nothing but the scope the server gives each connection.
    const exit = Effect.runSyncExit(
      TestKit.simulate(run, { ...timeouts, ...target, strategy }) as Effect.Effect<unknown, unknown>
    )
    if (Exit.isFailure(exit)) throw new Error("failed")
  })

const median = (xs: ReadonlyArray<number>) => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const table: Array<string> = []

if (both || values.throughput === true) {
  // Per second of the process's CPU time too (its GC threads included): what one free core gives.
  table.push("| protocol | runs | seconds | scenarios/s | per CPU-second |", "|---|---|---|---|---|")
  for (const { name, target } of cases) {
    // A warm-up first: the first runs pay for loading and compiling.
    fc.check(property(target, TestKit.random), { numRuns: Math.ceil(runs / 10), seed: 7 })
    const started = performance.now()
    const cpu = process.cpuUsage()
    const details = fc.check(property(target, TestKit.random), { numRuns: runs, seed: 1 })
    const seconds = (performance.now() - started) / 1000
    const used = process.cpuUsage(cpu)
    const cpuSeconds = (used.user + used.system) / 1e6
    if (details.failed) throw new Error(`${name}: the property failed (${String(details.errorInstance)})`)
    const line = {
      protocol: name,
      runs,
      seconds: Number(seconds.toFixed(2)),
      perSecond: Math.round(runs / seconds),
      cpuSeconds: Number(cpuSeconds.toFixed(2)),
      perCpuSecond: Math.round(runs / cpuSeconds)
    }
    console.log(JSON.stringify(line))
    table.push(`| ${name} | ${runs} | ${line.seconds} | ${line.perSecond} | ${line.perCpuSecond} |`)
  }
}

if (both || values.find === true) {
  table.push(
    "",
    `| broken variant | strategy | median runs-to-find | min | max | not found in ${maxRuns} |`,
    "|---|---|---|---|---|---|"
  )
  for (const { broken, name } of cases) {
    for (const strategy of strategies) {
      const found: Array<number> = []
      let missed = 0
      for (let seed = 1; seed <= seeds; seed++) {
        const details = fc.check(property(broken, strategy), { numRuns: maxRuns, seed, endOnFailure: true })
        if (details.failed) found.push(details.numRuns)
        else missed++
      }
      const all = [...found, ...Array.from({ length: missed }, () => maxRuns)]
      const label = strategy._tag === "Random" ? "random" : `PCT d=${strategy.depth} k=${strategy.steps}`
      console.log(JSON.stringify({ variant: name, strategy: label, runsToFind: found, missed }))
      table.push(
        `| ${name} | ${label} | ${median(all)} | ${Math.min(...all)} | ${Math.max(...all)} | ${missed} |`
      )
    }
  }
}

console.log(table.join("\n"))
