/**
 * `npm run bench -- --workers [--write]`: `serve --workers 1` against `serve --workers 2` on this
 * machine, for churn and round trips (bench/loadgen.c, whose own CPU is reported: on two cores it
 * takes much of one), and the time N workers take to exit on SIGTERM with stalled peers. Each
 * service is started fresh for each measurement; the two take turns, in a rotated order, for
 * BENCH_ROUNDS (default 5) rounds of BENCH_SECONDS (default 2). Medians, with the lowest and
 * highest round. `--write` replaces the workers section of docs/benchmarks.md (bench/run.ts keeps it).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as readline from "node:readline"

const root = path.resolve(import.meta.dirname, "../..")
const rounds = Number(process.env.BENCH_ROUNDS ?? 5)
const seconds = Number(process.env.BENCH_SECONDS ?? 2)
const warmup = Number(process.env.BENCH_WARMUP ?? 0.5)
const write = process.argv.includes("--write")
const ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100
/**
 * The services compared: one process, and two workers (on Node 20 they accept from the primary's
 * shared socket themselves, node:cluster's SCHED_NONE; on 22.12 and later each binds the port
 * with reusePort).
 */
const counts = ["1", "2"] as const
type Count = (typeof counts)[number]
const workersOf = (config: Count) => config === "1" ? 1 : 2

const cpuMs = (pid: number) => {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond * 1000
  } catch {
    return 0
  }
}

interface Service {
  readonly child: ChildProcess
  readonly port: number
  /** The primary and its workers (one process for --workers 1). */
  readonly pids: ReadonlyArray<number>
  readonly exited: Promise<number | null>
}

const start = (config: Count): Promise<Service> =>
  new Promise((resolve, reject) => {
    const workers = workersOf(config)
    const child = spawn(process.execPath, [
      path.join(root, "dist/src/bin.js"),
      "serve",
      "--workers",
      String(workers),
      "--log-level",
      "error",
      "--shutdown-timeout",
      "1s"
    ], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, NO_COLOR: "1" } })
    const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)))
    const timer = setTimeout(() => reject(new Error(`--workers ${workers} did not start`)), 20_000)
    readline.createInterface({ input: child.stdout! }).once("line", (line) => {
      clearTimeout(timer)
      const match = /:(\d+)$/.exec(line)
      if (match === null) return reject(new Error(`no port in ${line}`))
      const children = workers === 1
        ? []
        : execFileSync("pgrep", ["-P", String(child.pid)], { encoding: "utf8" }).trim().split("\n").map(Number)
      resolve({ child, port: Number(match[1]), pids: [child.pid!, ...children], exited })
    })
  })

const loadgen = path.join(root, "dist/bench/loadgen")
execFileSync("cc", ["-O2", "-o", loadgen, path.join(root, "bench/loadgen.c")], { stdio: "pipe" })

/** Runs the C load generator; `onMeasuring` when its counted window opens. */
const load = (mode: "churn" | "rtt", port: number, onMeasuring: () => void) =>
  new Promise<{ units: number; errors: number; cpuMs: number }>((resolve, reject) => {
    const connections = mode === "churn" ? 64 : 50
    const child = spawn(loadgen, [mode, String(port), String(seconds), String(connections), String(warmup)], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    readline.createInterface({ input: child.stdout! }).on("line", (line) => {
      const parsed = JSON.parse(line) as { measuring?: boolean; units: number; errors: number; cpuMs: number }
      if (parsed.measuring) onMeasuring()
      else resolve(parsed)
    })
    child.once("exit", (code) => code !== 0 && reject(new Error(`loadgen ${mode} exited ${code}`)))
  })

interface Sample {
  readonly rate: number
  /** The service's CPU (primary and workers) per unit, ms. */
  readonly serverCpu: number
  /** The load generator's CPU per unit, ms, and its share of one core over the window. */
  readonly loadCpu: number
  readonly loadCore: number
}

const measure = async (mode: "churn" | "rtt", workers: Count): Promise<Sample> => {
  const service = await start(workers)
  try {
    const total = () => service.pids.reduce((sum, pid) => sum + cpuMs(pid), 0)
    let cpu0 = total()
    const result = await load(mode, service.port, () => (cpu0 = total()))
    if (result.errors > 0) throw new Error(`--workers ${workers} ${mode}: ${result.errors} verification errors`)
    return {
      rate: result.units / seconds,
      serverCpu: (total() - cpu0) / result.units,
      loadCpu: result.cpuMs / result.units,
      loadCore: result.cpuMs / (seconds * 1000)
    }
  } finally {
    service.child.kill("SIGKILL")
    for (const pid of service.pids.slice(1)) {
      try {
        process.kill(pid, "SIGKILL")
      } catch {
        // Gone with the primary.
      }
    }
    await service.exited
  }
}

/** SIGTERM with 50 stalled peers (bench/load.ts stalled) and --shutdown-timeout 1s: seconds to exit. */
const shutdown = async (workers: Count): Promise<{ seconds: number; code: number | null }> => {
  const service = await start(workers)
  const peers = spawn(
    process.execPath,
    [path.join(root, "dist/bench/load.js"), "stalled", String(service.port), "10"],
    {
      stdio: ["ignore", "pipe", "inherit"]
    }
  )
  await new Promise<void>((resolve) =>
    readline.createInterface({ input: peers.stdout! }).on("line", (line) => {
      if ((JSON.parse(line) as { ready?: boolean }).ready) resolve()
    })
  )
  // The peers' writes pile up in the buffers for a second, as in bench/run.ts's shutdown.
  await new Promise((r) => setTimeout(r, 1000))
  const t0 = performance.now()
  service.child.kill("SIGTERM")
  const code = await Promise.race([
    service.exited,
    new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 15_000))
  ])
  const elapsed = (performance.now() - t0) / 1000
  peers.kill("SIGKILL")
  if (code === "timeout") {
    service.child.kill("SIGKILL")
    await service.exited
    return { seconds: elapsed, code: null }
  }
  return { seconds: elapsed, code }
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
const fmt = (v: number) => v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(2) : v.toPrecision(3)
const cell = (values: ReadonlyArray<number>) =>
  `${fmt(median(values))} (${fmt(Math.min(...values))}-${fmt(Math.max(...values))})`

const main = async () => {
  const started = Date.now()
  const load0 = os.loadavg()[0]!
  const empty = () => ({ "1": [], "2": [] })
  const samples: Record<"churn" | "rtt", Record<Count, Array<Sample>>> = { churn: empty(), rtt: empty() }
  const stops: Record<Count, Array<{ seconds: number; code: number | null }>> = empty()
  for (let round = 0; round < rounds; round++) {
    const order = counts.map((_, i) => counts[(i + round) % counts.length]!)
    for (const mode of ["churn", "rtt"] as const) {
      for (const workers of order) {
        process.stdout.write(`\r[round ${round + 1}/${rounds}] ${mode.padEnd(8)} --workers ${workers}   `)
        samples[mode][workers].push(await measure(mode, workers))
      }
    }
    for (const workers of order) {
      process.stdout.write(`\r[round ${round + 1}/${rounds}] shutdown --workers ${workers}   `)
      stops[workers].push(await shutdown(workers))
    }
  }
  process.stdout.write("\r" + " ".repeat(60) + "\r")
  const rows = (["churn", "rtt"] as const).flatMap((mode) =>
    counts.map((workers) => {
      const list = samples[mode][workers]
      const unit = mode === "churn" ? "conns/s" : "trips/s"
      const per = mode === "churn" ? "connection" : "trip"
      const ratios = list.map((s, i) => s.rate / samples[mode]["1"][i]!.rate)
      const ratio = workers === "1"
        ? "1.00x"
        : `${median(ratios).toFixed(2)}x (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`
      return `| ${mode} (${unit}) | ${workers} | ${cell(list.map((s) => s.rate))} | ${ratio} | ${
        cell(list.map((s) => s.serverCpu * 1000))
      } µs per ${per} | ${cell(list.map((s) => s.loadCpu * 1000))} µs per ${per}, ${
        cell(list.map((s) => s.loadCore * 100))
      } % of a core |`
    })
  )
  const stopRows = counts.map((workers) =>
    `| ${workers} | ${cell(stops[workers].map((s) => s.seconds))} | ${
      [...new Set(stops[workers].map((s) => String(s.code)))].join(", ")
    } |`
  )
  const load1 = os.loadavg()[0]!
  const section = `<!-- workers:start -->
## Workers: 1 against 2 on this machine

Generated by \`npm run bench -- --workers --write\` (bench/workers.ts) on ${new Date().toISOString().slice(0, 10)}:
${os.cpus().length} x ${os.cpus()[0]?.model ?? "?"}, Node ${process.version}, ${rounds} rounds of ${seconds} s after a
${warmup} s warm-up, took ${((Date.now() - started) / 1000).toFixed(0)} s, load average ${
    load0.toFixed(1)
  } before and ${load1.toFixed(1)} after. \`serve --workers N\`
started fresh for each measurement (N = 1 is one process, no primary); they take turns, in an
order rotated each round. Two workers share the port as \`serve --workers 2\` does on this Node
(on Node 20 they accept from the primary's shared socket themselves; on 22.12 and later each
binds it with reusePort). The
load is bench/loadgen.c (64 churn loops, 50 round-trip connections), on the same two cores.
Medians, with the lowest and highest round; the ratio is pair by pair per round. Server CPU is
the primary's and every worker's, from /proc.

| load | workers | rate | ratio to 1 worker | service CPU | load generator's own CPU |
|---|---|---|---|---|---|
${rows.join("\n")}

Shutdown: SIGTERM to the primary with 50 stalled peers (bench/load.ts \`stalled\`: they send and
never read) and \`--shutdown-timeout 1s\`; seconds from the signal to the primary's exit, and its
exit status:

| workers | seconds to exit | exit status |
|---|---|---|
${stopRows.join("\n")}
<!-- workers:end -->`
  console.log(section)
  if (write) {
    const file = path.join(root, "docs/benchmarks.md")
    const previous = fs.readFileSync(file, "utf8")
    const next = /<!-- workers:start -->[\s\S]*<!-- workers:end -->/.test(previous)
      ? previous.replace(/<!-- workers:start -->[\s\S]*<!-- workers:end -->/, section)
      : `${previous.trimEnd()}\n\n${section}\n`
    fs.writeFileSync(file, next)
    console.log("\nwrote the workers section of docs/benchmarks.md")
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
