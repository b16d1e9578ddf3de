/**
 * `npm run bench`: this project's `serve` side by side with plain Node and the idiomatic Effect
 * echo, each started fresh in its own process, taking turns, loaded from a separate process; and
 * the Effect 4 line's `serve`, Stream handler and Effect 4's own server on Node 22, against plain
 * Node on Node 22 (`npm run build:effect4` first: dist/effect4).
 * Prints the results. With `--write` (`npm run bench -- --write`) it also records them: writes
 * bench/results/<date>.json and latest.json, and regenerates docs/benchmarks.md with an SVG chart
 * of the ratios; without it, a run leaves the working tree as it was.
 * Bounded: BENCH_ROUNDS (default 5) rounds of BENCH_SECONDS (default 2) loads.
 */
import * as esbuild from "esbuild"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as readline from "node:readline"

const root = path.resolve(import.meta.dirname, "../..")
const usage = "usage: npm run bench [-- [--workers] [--write]]\n" +
  "  --workers  instead: serve --workers 1 against 2, churn, round trips and shutdown (bench/workers.ts)\n" +
  "  --write    record the results: bench/results/, docs/benchmarks.md and docs/benchmarks.svg\n" +
  "             (with --workers: the workers section of docs/benchmarks.md only)"
const flags = process.argv.slice(2)
if (flags.includes("--help")) {
  console.log(usage)
  process.exit(0)
}
const unknown = flags.filter((flag) => flag !== "--write" && flag !== "--workers")
if (unknown.length > 0) {
  console.error(`bench: unknown argument ${unknown[0]}\n${usage}`)
  process.exit(2)
}
const write = flags.includes("--write")
const rounds = Number(process.env.BENCH_ROUNDS ?? 5)
const warmupSeconds = Number(process.env.BENCH_WARMUP ?? 0.5)
const seconds = Number(process.env.BENCH_SECONDS ?? 2)
const ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100

type ServerName = "plain" | "effect-tcp-echo" | "idiomatic"
/**
 * Controls. Stream: plain Node's pipe in a process that loaded what `serve` loads; and plain
 * Node and `serve` both with glibc's heap trimming set by hand, so that neither pays the page
 * faults of an unmapped heap top and only the echo paths differ (src/internal/heap.ts). Churn and
 * shutdown: the server with a handler of a user's own, which has a fiber, a scope and a cleanup
 * that waits on its peer (bench/servers/custom.ts).
 */
type Control =
  | "stream-handler"
  | "run-handler"
  | "platform-adapter"
  | "rpc-this"
  | "rpc-node"
  | "plain-loaded"
  | "plain-trim"
  | "effect-tcp-echo-trim"
  | "custom-handler"
  | "effect-tcp-echo-info"
  | "plain-again"
  | Line4
/**
 * The Effect 4 line, in the same rounds, on Node 22 (the line needs >= 22.19; the registry's
 * `node` package when the bench itself runs on an older Node): plain Node on that Node, the base
 * of these rows' ratios, so that a ratio compares servers and not Nodes; the built-in echo
 * (dist/effect4's `serve`); the same Stream handler as stream-handler (custom-noscope.ts) on
 * dist/effect4; and Effect 4's own server with its documented pull loop (socketServer.effect4.ts).
 */
type Line4 = "plain-node22" | "effect4-echo" | "effect4-stream-handler" | "effect4-socket-server"
const line4Servers: ReadonlyArray<Line4> = [
  "plain-node22",
  "effect4-echo",
  "effect4-stream-handler",
  "effect4-socket-server"
]
/**
 * What the Effect 4 rows need, found once per run: Node 22's binary (spawned directly, so that
 * the pid measured is the server's, not npx's) and dist/effect4 (`npm run build:effect4`); the
 * two bench servers of that line are bundled here against dist/effect4 (the package an Effect 4
 * user installs), with `effect` and `@effect/platform-node` left for test/effect4/register.mjs to
 * resolve from the Effect 4 workspace. Without either, the run measures the rest and says why.
 */
const line4 =
  await (async (): Promise<{ readonly node: string; readonly version: string } | { readonly missing: string }> => {
    if (flags.includes("--workers")) return { missing: "not with --workers" }
    if (!fs.existsSync(path.join(root, "dist/effect4/bin.js"))) {
      return { missing: "dist/effect4 is not built (npm run build:effect4)" }
    }
    let node = process.execPath
    try {
      if (Number(process.versions.node.split(".")[0]) < 22) {
        node = execFileSync("npx", ["-y", "-p", "node@22", "--", "node", "-p", "process.execPath"], {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "pipe"]
        }).trim()
      }
      const outdir = path.join(root, "dist/bench/effect4")
      await esbuild.build({
        entryPoints: ["custom-noscope.ts", "socketServer.effect4.ts"].map((file) =>
          path.join(root, "bench/servers", file)
        ),
        bundle: true,
        packages: "external",
        platform: "node",
        target: "node22",
        format: "esm",
        outdir,
        logLevel: "warning",
        plugins: [{
          name: "effect4-line",
          setup(build) {
            build.onResolve({ filter: /\/src\/index\.js$/ }, () => ({
              path: path.relative(outdir, path.join(root, "dist/effect4/index.js")),
              external: true
            }))
          }
        }]
      })
      const version = execFileSync(node, ["--version"], { encoding: "utf8" }).trim()
      return { node, version }
    } catch (error) {
      return { missing: `no Effect 4 line (${String(error).split("\n")[0]})` }
    }
  })()
if ("missing" in line4 && !flags.includes("--workers")) {
  console.error(`bench: ${line4.missing}: the Effect 4 rows are not measured`)
}
const line4Node = "node" in line4 ? line4.node : process.execPath
const line4Hook = ["--import", path.join(root, "test/effect4/register.mjs")]
const line4Measured: ReadonlyArray<Line4> = "node" in line4 ? line4Servers : []
/**
 * Handlers of a user's own, on this server: a Stream echo with a scoped cleanup (custom-handler)
 * and without (stream-handler), `connection.run` with the same cleanup (run-handler), and the
 * platform's socket API through `PlatformSocketServer` (platform-adapter), whose code is the
 * idiomatic server's (bench/servers/idiomatic.ts) on @effect/platform-node's own server.
 */
const handlerServers: ReadonlyArray<Control> = ["custom-handler", "stream-handler", "run-handler", "platform-adapter"]
const controlsOf: Partial<Record<Scenario, ReadonlyArray<Control>>> = {
  stream: ["plain-loaded", "plain-trim", "effect-tcp-echo-trim", "plain-again", ...handlerServers, ...line4Measured],
  rtt: ["plain-again", ...handlerServers, ...line4Measured],
  churn: ["effect-tcp-echo-info", ...handlerServers, ...line4Measured],
  // For the Effect 3 and Effect 4 section: 50 peers that never read, against plain Node on the same Node.
  memory: ["stream-handler", ...line4Measured],
  idle: [...handlerServers, ...line4Measured],
  shutdown: ["custom-handler"],
  // @effect/rpc over TCP, the same RpcServer on this server and on @effect/platform-node's own.
  rpc: ["rpc-this", "rpc-node"]
}
const trimEnv = { MALLOC_TRIM_THRESHOLD_: String(64 * 2 ** 20) }
// `serve` at its default log level, and as the bench runs it (no record per connection).
const serveAtInfo = [path.join(root, "dist/src/bin.js"), "serve", "--shutdown-timeout", "1s"]
const serveArgs = [...serveAtInfo, "--log-level", "error"]
const servers: Record<
  ServerName | Control,
  {
    readonly args: ReadonlyArray<string>
    readonly env?: Record<string, string>
    readonly quiet?: boolean
    /** The Node binary, when not the bench's own. */
    readonly node?: string
  }
> = {
  plain: { args: [path.join(root, "dist/bench/servers/plain.js")] },
  "effect-tcp-echo": { args: serveArgs },
  idiomatic: { args: [path.join(root, "dist/bench/servers/idiomatic.js")] },
  "plain-loaded": { args: [path.join(root, "dist/bench/servers/plain-loaded.js")] },
  "plain-trim": { args: [path.join(root, "dist/bench/servers/plain.js")], env: trimEnv },
  "effect-tcp-echo-trim": { args: serveArgs, env: trimEnv },
  "custom-handler": { args: [path.join(root, "dist/bench/servers/custom.js")] },
  "stream-handler": { args: [path.join(root, "dist/bench/servers/custom-noscope.js")] },
  "run-handler": { args: [path.join(root, "dist/bench/servers/custom-run.js")] },
  "platform-adapter": { args: [path.join(root, "dist/bench/servers/platform.js")] },
  "rpc-this": { args: [path.join(root, "dist/bench/servers/rpc.js"), "this"] },
  "rpc-node": { args: [path.join(root, "dist/bench/servers/rpc.js"), "node"] },
  // `serve` at its default log level: it then reads each peer's address when it admits it (getpeername),
  // so that a peer that resets is named in the record (src/internal/lifecycle.ts). Its own records
  // (startup only, under churn) are not shown.
  "effect-tcp-echo-info": { args: serveAtInfo, quiet: true },
  // Plain Node again, as a server of its own in the same rounds: its ratio to plain Node is what
  // the machine's noise alone makes of a ratio.
  "plain-again": { args: [path.join(root, "dist/bench/servers/plain.js")] },
  "plain-node22": { args: [path.join(root, "dist/bench/servers/plain.js")], node: line4Node },
  "effect4-echo": {
    args: [path.join(root, "dist/effect4/bin.js"), ...serveArgs.slice(1)],
    node: line4Node
  },
  "effect4-stream-handler": {
    args: [...line4Hook, path.join(root, "dist/bench/effect4/custom-noscope.js")],
    node: line4Node
  },
  "effect4-socket-server": {
    args: [...line4Hook, path.join(root, "dist/bench/effect4/socketServer.effect4.js")],
    node: line4Node
  }
}
const names: ReadonlyArray<ServerName> = ["plain", "effect-tcp-echo", "idiomatic"]

type Scenario = "stream" | "rtt" | "churn" | "memory" | "idle" | "shutdown" | "rpc"
const scenarios: ReadonlyArray<{ name: Scenario; title: string; higherIsBetter: boolean }> = [
  { name: "stream", title: "stream: 16 conns x 64 KiB writes (MB/s)", higherIsBetter: true },
  { name: "rtt", title: "round trips: 50 conns x 64 B (trips/s)", higherIsBetter: true },
  { name: "churn", title: "churn: 32 loops connect/send/half-close/read (conns/s)", higherIsBetter: true },
  { name: "memory", title: "memory: 50 peers send, never read (RSS growth MiB)", higherIsBetter: false },
  { name: "idle", title: "idle: 10,000 open connections (KiB RSS per conn)", higherIsBetter: false },
  { name: "shutdown", title: "shutdown: SIGTERM with 50 stalled peers (s to exit)", higherIsBetter: false }
]

interface Sample {
  readonly value: number
  /** Server CPU milliseconds per unit of work (per MB, trip, connection), when meaningful. */
  readonly cpuPerUnit?: number
  /** The load generator's own CPU milliseconds per unit: that it is not what sets the pace. */
  readonly loadCpuPerUnit?: number
  readonly note?: string
  /** Minor page faults of the server per MB (stream only). */
  readonly faultsPerUnit?: number
  readonly p50?: number
  readonly p99?: number
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const statFields = (pid: number) => fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
const procStat = (pid: number) => {
  const fields = statFields(pid)
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond * 1000
}
const minorFaults = (pid: number) => Number(statFields(pid)[7])
const rssKiB = (pid: number) => {
  const line = fs.readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"))
  return Number(line?.split(/\s+/)[1] ?? 0)
}

interface Started {
  readonly child: ChildProcess
  readonly port: number
  readonly exited: Promise<number | null>
}

const startServer = (name: ServerName | Control): Promise<Started> =>
  new Promise((resolve, reject) => {
    const child = spawn(servers[name].node ?? process.execPath, servers[name].args as Array<string>, {
      stdio: ["ignore", "pipe", servers[name].quiet === true ? "ignore" : "inherit"],
      env: { ...process.env, NO_COLOR: "1", ...servers[name].env }
    })
    const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)))
    const timer = setTimeout(() => reject(new Error(`${name} did not start`)), 20_000)
    readline.createInterface({ input: child.stdout! }).once("line", (line) => {
      clearTimeout(timer)
      const match = /\d+\.\d+\.\d+\.\d+:(\d+)/.exec(line)
      if (match === null) return reject(new Error(`${name}: no port in ${line}`))
      resolve({ child, port: Number(match[1]), exited })
    })
  })

const stop = async (server: Started) => {
  server.child.kill("SIGKILL")
  await server.exited
}

/**
 * Runs the load generator; `onReady` fires when a holding mode has all its connections up, and
 * `onMeasuring` when a timed mode ends its warm-up and opens the counted window.
 */
/**
 * The C load generator (bench/loadgen.c) for churn and round trips, compiled once per run: a Node
 * client costs about what the Node server it drives does per connection, so on two cores it, not
 * the server, would set the pace. Without a C compiler, the Node load generator stands in, and
 * the results say so.
 */
const loadgen = (() => {
  const binary = path.join(root, "dist/bench/loadgen")
  try {
    execFileSync("cc", ["-O2", "-o", binary, path.join(root, "bench/loadgen.c")], { stdio: "pipe" })
    return binary
  } catch (error) {
    console.error(`no C load generator (${String(error).split("\n")[0]}): churn and round trips use the Node one`)
    return undefined
  }
})()
const loadgenConnections: Record<string, number> = { churn: 64, rtt: 50 }

const load = (mode: string, port: number, duration: number, onReady?: () => void, onMeasuring?: () => void) =>
  new Promise<Record<string, number>>((resolve, reject) => {
    const compiled = loadgen !== undefined && loadgenConnections[mode] !== undefined
    const child = compiled
      ? spawn(
        loadgen!,
        [mode, String(port), String(duration), String(loadgenConnections[mode]), String(warmupSeconds)],
        {
          stdio: ["ignore", "pipe", "inherit"]
        }
      )
      : spawn(process.execPath, [path.join(root, "dist/bench/load.js"), mode, String(port), String(duration)], {
        stdio: ["ignore", "pipe", "inherit"]
      })
    readline.createInterface({ input: child.stdout! }).on("line", (line) => {
      const parsed = JSON.parse(line) as Record<string, number> & {
        ready?: boolean
        measuring?: boolean
        error?: string
      }
      if (parsed.ready) onReady?.()
      else if (parsed.measuring) onMeasuring?.()
      else if (parsed.error) reject(new Error(String(parsed.error)))
      else resolve(parsed)
    })
    child.once("exit", (code) => code !== 0 && reject(new Error(`load ${mode} exited ${code}`)))
  })

/** The @effect/rpc client (bench/rpc/load.ts), the same for both RPC servers. */
const rpcLoad = (port: number, duration: number, onMeasuring: () => void) =>
  new Promise<Record<string, number>>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(root, "dist/bench/rpc/load.js"), String(port), String(duration)], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    readline.createInterface({ input: child.stdout! }).on("line", (line) => {
      const parsed = JSON.parse(line) as Record<string, number> & { measuring?: boolean; error?: string }
      if (parsed.measuring) onMeasuring()
      else if (parsed.error) reject(new Error(String(parsed.error)))
      else resolve(parsed)
    })
    child.once("exit", (code) => code !== 0 && reject(new Error(`rpc load exited ${code}`)))
  })

const measure = async (scenario: Scenario, name: ServerName | Control): Promise<Sample> => {
  const server = await startServer(name)
  const pid = server.child.pid!
  try {
    if (scenario === "stream" || scenario === "rtt" || scenario === "churn") {
      // Sampled when the counted window opens: the warm-up (the server compiling its hot path) is
      // in neither the work nor the CPU time.
      let cpu0 = procStat(pid)
      let faults0 = minorFaults(pid)
      const result = await load(scenario, server.port, seconds, undefined, () => {
        cpu0 = procStat(pid)
        faults0 = minorFaults(pid)
      })
      const cpu = procStat(pid) - cpu0
      const faults = minorFaults(pid) - faults0
      const units = scenario === "stream" ? result.units! / 1e6 : result.units!
      if (result.errors) throw new Error(`${name} ${scenario}: ${result.errors} verification errors`)
      return {
        value: units / seconds,
        cpuPerUnit: cpu / units,
        ...(result.cpuMs === undefined ? {} : { loadCpuPerUnit: result.cpuMs / units }),
        ...(scenario === "stream" ? { faultsPerUnit: faults / units } : {}),
        ...(scenario === "rtt" ? { p50: result.p50!, p99: result.p99! } : {})
      }
    }
    if (scenario === "rpc") {
      let cpu0 = procStat(pid)
      const result = await rpcLoad(server.port, seconds, () => {
        cpu0 = procStat(pid)
      })
      if (result.errors) throw new Error(`${name} rpc: ${result.errors} failed calls`)
      return {
        value: result.units! / seconds,
        cpuPerUnit: (procStat(pid) - cpu0) / result.units!,
        p50: result.p50!,
        p99: result.p99!
      }
    }
    if (scenario === "memory") {
      const base = rssKiB(pid)
      let peak = base
      const sampler = setInterval(() => (peak = Math.max(peak, rssKiB(pid))), 50)
      const result = await load("stalled", server.port, seconds + 1)
      clearInterval(sampler)
      // The growth depends on the baseline too (a smaller process at rest grows its heap under
      // load): the peak is in the note.
      return {
        value: (peak - base) / 1024,
        note: `peak ${(peak / 1024).toFixed(0)} MiB, ${(result.units! / 2 ** 20).toFixed(0)} MiB pushed`
      }
    }
    if (scenario === "idle") {
      const base = rssKiB(pid)
      let perConnection = 0
      await load("idle", server.port, 2, () => {
        setTimeout(() => (perConnection = (rssKiB(pid) - base) / 10_000), 1000)
      })
      return { value: perConnection }
    }
    // shutdown: 50 stalled peers, then SIGTERM; plain Node and the idiomatic echo wait forever.
    const cap = 5000
    let elapsed = cap
    let exitedInTime = false
    await load("stalled", server.port, 1 + cap / 1000 + 1, () => {
      setTimeout(async () => {
        const t0 = performance.now()
        server.child.kill("SIGTERM")
        const code = await Promise.race([server.exited, sleep(cap).then(() => "timeout" as const)])
        elapsed = performance.now() - t0
        exitedInTime = code !== "timeout"
      }, 1000)
    })
    return exitedInTime
      ? { value: elapsed / 1000 }
      : { value: cap / 1000, note: `still running after ${cap / 1000} s (killed)` }
  } finally {
    await stop(server)
  }
}

const workspaceVersion = (name: string) =>
  JSON.parse(fs.readFileSync(path.join(root, "test/effect4/node_modules", name, "package.json"), "utf8"))
    .version as string

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const main = async () => {
  const samples: Record<string, Record<ServerName, Array<Sample>>> = {}
  // Samples of the controls, by scenario (the custom handler is measured under two).
  const controlSamples: Partial<Record<Scenario, Partial<Record<Control, Array<Sample>>>>> = {}
  const controlOf = (scenario: Scenario, name: Control): ReadonlyArray<Sample> => controlSamples[scenario]?.[name] ?? []
  const started = Date.now()
  for (let round = 0; round < rounds; round++) {
    for (const scenario of scenarios) {
      samples[scenario.name] ??= { plain: [], "effect-tcp-echo": [], idiomatic: [] }
      // Rotate the order each round so drift on a shared machine hits every server alike.
      const measured: ReadonlyArray<ServerName | Control> = [...names, ...(controlsOf[scenario.name] ?? [])]
      const order = measured.map((_, i) => measured[(i + round) % measured.length]!)
      for (const name of order) {
        process.stdout.write(`\r[round ${round + 1}/${rounds}] ${scenario.name.padEnd(8)} ${name.padEnd(22)}`)
        const sample = await measure(scenario.name, name)
        if (!(names as ReadonlyArray<string>).includes(name)) {
          ;((controlSamples[scenario.name] ??= {})[name as Control] ??= []).push(sample)
        } else samples[scenario.name]![name as ServerName].push(sample)
      }
    }
    const rpcServers = controlsOf.rpc!
    for (const [i] of rpcServers.entries()) {
      const name = rpcServers[(i + round) % rpcServers.length]!
      process.stdout.write(`\r[round ${round + 1}/${rounds}] rpc      ${name.padEnd(22)}`)
      ;((controlSamples.rpc ??= {})[name] ??= []).push(await measure("rpc", name))
    }
  }
  process.stdout.write("\r" + " ".repeat(60) + "\r")

  const rows = scenarios.map((scenario) => {
    const perServer = Object.fromEntries(names.map((name) => {
      const list = samples[scenario.name]![name]
      const cpu = list.map((s) => s.cpuPerUnit).filter((v): v is number => v !== undefined)
      return [name, {
        median: median(list.map((s) => s.value)),
        cpuPerUnit: cpu.length > 0 ? median(cpu) : undefined,
        p50: list[0]?.p50 === undefined ? undefined : median(list.map((s) => s.p50!)),
        p99: list[0]?.p99 === undefined ? undefined : median(list.map((s) => s.p99!)),
        notes: [...new Set(list.map((s) => s.note).filter(Boolean))],
        values: list.map((s) => s.value)
      }]
    })) as Record<
      ServerName,
      { median: number; cpuPerUnit?: number; p50?: number; p99?: number; notes: Array<string>; values: Array<number> }
    >
    // Ratio to plain Node, pair by pair per round, then the median: >1 is better for every row.
    const pairwise = (name: ServerName) =>
      samples[scenario.name]![name].map((s, i) => {
        const plain = samples[scenario.name]!.plain[i]!.value
        return scenario.higherIsBetter ? s.value / plain : plain / Math.max(s.value, 1e-9)
      })
    const ratio = (name: ServerName) => median(pairwise(name))
    // The spread of the per-round ratios: on a shared 2-core machine a single round can be off by
    // a fifth either way, and a median without its range would claim more than was measured.
    const range = (name: ServerName) => [Math.min(...pairwise(name)), Math.max(...pairwise(name))] as const
    return {
      scenario,
      perServer,
      ratio: { "effect-tcp-echo": ratio("effect-tcp-echo"), idiomatic: ratio("idiomatic") },
      range: { "effect-tcp-echo": range("effect-tcp-echo"), idiomatic: range("idiomatic") }
    }
  })

  const machine = {
    cpus: `${os.cpus().length} x ${os.cpus()[0]?.model ?? "?"}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`,
    node: process.version,
    kernel: os.release(),
    effect: JSON.parse(fs.readFileSync(path.join(root, "node_modules/effect/package.json"), "utf8")).version as string,
    platformNode: JSON.parse(
      fs.readFileSync(path.join(root, "node_modules/@effect/platform-node/package.json"), "utf8")
    ).version as string,
    // The Effect 4 rows' Node and packages (the Effect 4 workspace's), or why they were not measured.
    line4: "node" in line4
      ? {
        node: line4.version,
        effect: workspaceVersion("effect"),
        platformNode: workspaceVersion("@effect/platform-node")
      }
      : { missing: line4.missing }
  }
  const result = {
    date: new Date().toISOString(),
    rounds,
    seconds,
    machine,
    loadGenerator: loadgen === undefined ? "node (bench/load.ts)" : "C (bench/loadgen.c) for churn and round trips",
    durationSeconds: (Date.now() - started) / 1000,
    rows,
    samples,
    control: controlSamples
  }

  const json = JSON.stringify(result, null, 2)
  if (write) {
    fs.mkdirSync(path.join(root, "bench/results"), { recursive: true })
    fs.writeFileSync(path.join(root, "bench/results/latest.json"), json)
    fs.writeFileSync(path.join(root, `bench/results/${result.date.slice(0, 10)}.json`), json)
  }

  const fmt = (v: number | undefined, digits = 2) => v === undefined ? "" : v >= 100 ? v.toFixed(0) : v.toFixed(digits)
  const spread = ([low, high]: readonly [number, number]) => `${fmt(low)}-${fmt(high)}`
  const target = (i: number) =>
    `${fmt(rows[i]!.ratio["effect-tcp-echo"])}x (rounds: ${spread(rows[i]!.range["effect-tcp-echo"])})`
  const table = [
    "| load | plain Node | effect-tcp-echo | idiomatic Effect | ratio effect-tcp-echo | ratio idiomatic |",
    "|---|---|---|---|---|---|",
    ...rows.map(({ perServer, range, ratio, scenario }) =>
      `| ${scenario.title} | ${
        names.map((n) =>
          fmt(perServer[n].median) + (perServer[n].notes.length ? ` (${perServer[n].notes.join("; ")})` : "")
        ).join(" | ")
      } | ${fmt(ratio["effect-tcp-echo"])}x (${spread(range["effect-tcp-echo"])}) | ${fmt(ratio.idiomatic)}x (${
        spread(range.idiomatic)
      }) |`
    )
  ].join("\n")
  // Server CPU per unit: the median over rounds, the lowest and highest round, and what the load
  // generator itself spent per unit (far less: it is not what sets the pace).
  const cpuOf = (list: ReadonlyArray<Sample>) =>
    list.map((s) => s.cpuPerUnit).filter((v): v is number => v !== undefined)
  const cpuCell = (list: ReadonlyArray<Sample>) => {
    const cpu = cpuOf(list)
    const load = list.map((s) => s.loadCpuPerUnit).filter((v): v is number => v !== undefined)
    return `${median(cpu).toPrecision(3)} (${Math.min(...cpu).toPrecision(3)}-${Math.max(...cpu).toPrecision(3)})` +
      (load.length > 0 ? `; load ${median(load).toPrecision(2)}` : "")
  }
  const unitOf = (name: Scenario) => (name === "stream" ? "MB" : name === "rtt" ? "trip" : "connection")
  const cpuTable = [
    "| load | plain Node | effect-tcp-echo | idiomatic Effect |",
    "|---|---|---|---|",
    ...rows.filter((r) => r.perServer.plain.cpuPerUnit !== undefined).map(({ scenario }) =>
      `| ${scenario.name} (server CPU ms per ${unitOf(scenario.name)}) | ${
        names.map((n) => cpuCell(samples[scenario.name]![n])).join(" | ")
      } |`
    )
  ].join("\n")
  // The churn headline: server CPU per connection against plain Node's, round by round.
  const cpuRatio = (list: ReadonlyArray<Sample>, base: ReadonlyArray<Sample>) => {
    const ratios = list.map((s, i) => s.cpuPerUnit! / base[i]!.cpuPerUnit!)
    return `${fmt(median(ratios))}x (${spread([Math.min(...ratios), Math.max(...ratios)])})`
  }
  const churnCpu = cpuRatio(samples.churn!["effect-tcp-echo"], samples.churn!.plain)
  const custom = controlOf("churn", "custom-handler")
  const customShutdown = controlOf("shutdown", "custom-handler")
  const atInfo = controlOf("churn", "effect-tcp-echo-info")
  // Per-round ratios as the main rows give them: the median, then the lowest and highest round.
  const roundsCell = (ratios: ReadonlyArray<number>) =>
    `${fmt(median(ratios))}x (rounds: ${spread([Math.min(...ratios), Math.max(...ratios)])})`
  const byRound = (list: ReadonlyArray<Sample>, base: ReadonlyArray<Sample>) =>
    list.map((s, i) => s.value / base[i]!.value)
  // Plain Node against itself (higher is better for both loads).
  const againRatio = (scenario: "stream" | "rtt") => {
    const again = controlOf(scenario, "plain-again")
    return again.length === 0 ? "not measured" : roundsCell(byRound(again, samples[scenario]!.plain))
  }
  const customTable = custom.length === 0 ? "" : [
    "| load | effect-tcp-echo, built-in echo | the same at --log-level info (the default) | a handler of a user's own |",
    "|---|---|---|---|",
    `| churn (conns/s) | ${fmt(rows[2]!.perServer["effect-tcp-echo"].median)} | ${
      fmt(median(atInfo.map((s) => s.value)))
    } | ${fmt(median(custom.map((s) => s.value)))} |`,
    `| churn (server CPU ms per connection) | ${cpuCell(samples.churn!["effect-tcp-echo"])} | ${cpuCell(atInfo)} | ${
      cpuCell(custom)
    } |`,
    `| churn: server CPU per connection to plain Node's, round by round | ${churnCpu} | ${
      cpuRatio(atInfo, samples.churn!.plain)
    } | ${cpuRatio(custom, samples.churn!.plain)} |`,
    `| shutdown: SIGTERM with 50 stalled peers, 1 s deadline (s to exit) | ${
      fmt(rows[5]!.perServer["effect-tcp-echo"].median)
    } | | ${fmt(median(customShutdown.map((s) => s.value)))} |`
  ].join("\n")
  // Stream, decomposed: what the heap costs (the controls) against what the echo path costs.
  const streamSamples = samples.stream!
  const heapAlike = `MALLOC_TRIM_THRESHOLD_=${trimEnv.MALLOC_TRIM_THRESHOLD_}`
  const decomposed = [
    ["plain Node", streamSamples.plain, streamSamples.plain, "plain Node"],
    [
      "plain Node, in a process that loaded what `serve` loads",
      controlOf("stream", "plain-loaded"),
      streamSamples.plain,
      "plain Node"
    ],
    [
      "effect-tcp-echo (`serve`, with its heap step)",
      streamSamples["effect-tcp-echo"],
      streamSamples.plain,
      "plain Node"
    ],
    [`plain Node, ${heapAlike}`, controlOf("stream", "plain-trim"), streamSamples.plain, "plain Node"],
    [
      `effect-tcp-echo, ${heapAlike}`,
      controlOf("stream", "effect-tcp-echo-trim"),
      controlOf("stream", "plain-trim"),
      `plain Node, ${heapAlike}`
    ]
  ] as const
  const streamTable = [
    "| server | MB/s | ratio (rounds) | to | server CPU ms per MB | minor page faults per MB |",
    "|---|---|---|---|---|---|",
    ...decomposed.map(([label, list, base, baseLabel]) => {
      const ratios = byRound(list, base)
      return `| ${label} | ${fmt(median(list.map((s) => s.value)))} | ${fmt(median(ratios))}x (${
        spread([Math.min(...ratios), Math.max(...ratios)])
      }) | ${baseLabel} | ${median(list.map((s) => s.cpuPerUnit!)).toPrecision(3)} | ${
        fmt(median(list.map((s) => s.faultsPerUnit!)), 0)
      } |`
    })
  ].join("\n")
  const alike = byRound(controlOf("stream", "effect-tcp-echo-trim"), controlOf("stream", "plain-trim"))
  const alikeRatio = roundsCell(alike)
  const controlLine =
    `With the heap set alike for both (${heapAlike}), so that only the echo paths differ: effect-tcp-echo streams ${alikeRatio} of plain Node.`
  const rtt = rows.find((r) => r.scenario.name === "rtt")!
  const latency = names.map((n) =>
    `${n} p50 ${fmt(rtt.perServer[n].p50, 3)} ms, p99 ${fmt(rtt.perServer[n].p99, 3)} ms`
  ).join("; ")

  // A handler of a user's own: each against plain Node in the same rounds, as the main rows.
  const handlerLabel: Record<string, string> = {
    "custom-handler": "Stream echo with a scoped cleanup (custom.ts)",
    "stream-handler": "Stream echo (custom-noscope.ts)",
    "run-handler": "`connection.run` echo with a scoped cleanup (custom-run.ts)",
    "platform-adapter": "@effect/platform code through `PlatformSocketServer` (platform.ts)",
    idiomatic: "the same @effect/platform code on @effect/platform-node's own server (idiomatic.ts)"
  }
  const handlerSamples = (name: string, scenario: Scenario): ReadonlyArray<Sample> =>
    name === "idiomatic" ? samples[scenario]?.idiomatic ?? [] : controlOf(scenario, name as Control)
  const ratioOf = (list: ReadonlyArray<Sample>, scenario: Scenario, higherIsBetter: boolean) =>
    median(list.map((s, i) => {
      const plain = samples[scenario]!.plain[i]!.value
      return higherIsBetter ? s.value / plain : plain / Math.max(s.value, 1e-9)
    }))
  const cpuTimes = (list: ReadonlyArray<Sample>, scenario: Scenario) =>
    median(list.map((s, i) => s.cpuPerUnit! / samples[scenario]!.plain[i]!.cpuPerUnit!))
  const handlerFigures = [...handlerServers, "idiomatic"].map((name) => {
    const of = (scenario: Scenario) => handlerSamples(name, scenario)
    return {
      name,
      stream: ratioOf(of("stream"), "stream", true),
      streamCpu: cpuTimes(of("stream"), "stream"),
      rtt: ratioOf(of("rtt"), "rtt", true),
      rttCpu: cpuTimes(of("rtt"), "rtt"),
      churn: ratioOf(of("churn"), "churn", true),
      churnCpu: cpuTimes(of("churn"), "churn"),
      idle: median(of("idle").map((s) => s.value)),
      idleTimes: 1 / ratioOf(of("idle"), "idle", false)
    }
  })
  const figuresOf = (name: string) => handlerFigures.find((f) => f.name === name)!
  const handlerTable = [
    "| server | stream (x plain's CPU per MB) | round trips (x plain's CPU per trip) | churn (x plain's CPU per connection) | idle KiB per connection (x plain's) |",
    "|---|---|---|---|---|",
    ...handlerFigures.map((f) =>
      `| ${handlerLabel[f.name]} | ${fmt(f.stream)}x (${fmt(f.streamCpu)}) | ${fmt(f.rtt)}x (${fmt(f.rttCpu)}) | ${
        fmt(f.churn)
      }x (${fmt(f.churnCpu)}) | ${fmt(f.idle)} (${fmt(f.idleTimes)}) |`
    )
  ].join("\n")
  const rpcOf = (name: Control) => controlOf("rpc", name)
  const rpcRatio = median(rpcOf("rpc-this").map((s, i) => s.value / rpcOf("rpc-node")[i]!.value))
  const rpcCell = (name: Control) => {
    const list = rpcOf(name)
    return `${fmt(median(list.map((s) => s.value)))} calls/s, p50 ${fmt(median(list.map((s) => s.p50!)), 2)} ms, p99 ${
      fmt(median(list.map((s) => s.p99!)), 2)
    } ms, server CPU ${median(list.map((s) => s.cpuPerUnit!)).toPrecision(3)} ms per call`
  }
  const rpcLine = `@effect/rpc over TCP, the same RpcServer and client (bench/rpc/): on this server ${
    rpcCell("rpc-this")
  }; on @effect/platform-node's own socket server ${rpcCell("rpc-node")}; calls per second ${
    fmt(rpcRatio)
  }x, round by round.`
  const handlerTargets = [
    "| target | measured |",
    "|---|---|",
    ...["custom-handler", "stream-handler"].map((name) => {
      const f = figuresOf(name)
      return `| ${
        handlerLabel[name]
      }: round trips >= 0.8x, stream >= 0.95x, churn CPU per connection <= 2x, idle memory <= 2x plain Node's | round trips ${
        fmt(f.rtt)
      }x, stream ${fmt(f.stream)}x, churn CPU ${fmt(f.churnCpu)}x, idle ${fmt(f.idleTimes)}x |`
    }),
    (() => {
      const f = figuresOf("run-handler")
      return `| ${handlerLabel["run-handler"]}: the same targets | round trips ${fmt(f.rtt)}x, stream ${
        fmt(f.stream)
      }x, churn CPU ${fmt(f.churnCpu)}x, idle ${fmt(f.idleTimes)}x |`
    })(),
    (() => {
      const f = figuresOf("platform-adapter")
      const i = figuresOf("idiomatic")
      return `| @effect/platform code through \`PlatformSocketServer\`: ahead of @effect/platform-node's own server on every load and in memory; round trips >= 0.6x plain | stream ${
        fmt(f.stream)
      }x vs ${fmt(i.stream)}x, round trips ${fmt(f.rtt)}x vs ${fmt(i.rtt)}x, churn ${fmt(f.churn)}x vs ${
        fmt(i.churn)
      }x, idle ${fmt(f.idle)} vs ${fmt(i.idle)} KiB |`
    })(),
    `| @effect/rpc on this server against @effect/platform-node's own: calls per second >= 1.0x, p99 no worse | ${
      fmt(rpcRatio)
    }x; p99 ${fmt(median(rpcOf("rpc-this").map((s) => s.p99!)), 2)} vs ${
      fmt(median(rpcOf("rpc-node").map((s) => s.p99!)), 2)
    } ms |`
  ].join("\n")

  // Effect 3 and Effect 4: each line's built-in echo, the same Stream handler and the line's own
  // socket server, each against plain Node on the Node it runs on, round by round.
  const lineScenarios: ReadonlyArray<Scenario> = ["stream", "rtt", "churn", "idle", "memory"]
  const baseUnit: Partial<Record<Scenario, string>> = {
    stream: "MB/s",
    rtt: "trips/s",
    churn: "conns/s",
    idle: "KiB",
    memory: "MiB"
  }
  const lineCell = (scenario: Scenario, list: ReadonlyArray<Sample>, base: ReadonlyArray<Sample> | undefined) => {
    if (list.length === 0) return "not measured"
    if (base === undefined) return `${fmt(median(list.map((s) => s.value)))} ${baseUnit[scenario]}`
    const ratios = list.map((s, i) => s.value / Math.max(base[i]!.value, 1e-9))
    if (!scenarios.find((s) => s.name === scenario)!.higherIsBetter) {
      return `${fmt(median(list.map((s) => s.value)))} (${fmt(median(ratios))}x)`
    }
    const cpu = list.map((s, i) => s.cpuPerUnit! / base[i]!.cpuPerUnit!)
    return `${fmt(median(ratios))}x (${fmt(median(cpu))})`
  }
  // Each row: its samples by scenario, and the plain Node it is measured against (none: the base).
  interface LineRow {
    readonly label: string
    readonly node: string
    readonly of: (scenario: Scenario) => ReadonlyArray<Sample>
    readonly base?: (scenario: Scenario) => ReadonlyArray<Sample>
  }
  const plainOf = (scenario: Scenario) => samples[scenario]!.plain
  const plain22Of = (scenario: Scenario) => controlOf(scenario, "plain-node22")
  const lineRows: ReadonlyArray<LineRow> = [
    { label: "plain Node (plain.ts): the Effect 3 rows' base", node: machine.node, of: plainOf },
    {
      label: "Effect 3: built-in echo (`serve`)",
      node: machine.node,
      of: (sc) => samples[sc]!["effect-tcp-echo"],
      base: plainOf
    },
    {
      label: "Effect 3: Stream echo (custom-noscope.ts)",
      node: machine.node,
      of: (sc) => controlOf(sc, "stream-handler"),
      base: plainOf
    },
    {
      label: `Effect 3: @effect/platform-node ${machine.platformNode}'s own server, \`socket.run\` (idiomatic.ts)`,
      node: machine.node,
      of: (sc) => samples[sc]!.idiomatic,
      base: plainOf
    },
    ...("node" in line4 && "platformNode" in machine.line4
      ? [
        { label: "plain Node (plain.ts): the Effect 4 rows' base", node: line4.version, of: plain22Of },
        {
          label: "Effect 4: built-in echo (`serve`)",
          node: line4.version,
          of: (sc: Scenario) => controlOf(sc, "effect4-echo"),
          base: plain22Of
        },
        {
          label: "Effect 4: Stream echo (custom-noscope.ts)",
          node: line4.version,
          of: (sc: Scenario) => controlOf(sc, "effect4-stream-handler"),
          base: plain22Of
        },
        {
          label:
            `Effect 4: @effect/platform-node ${machine.line4.platformNode}'s own server, the pull loop (socketServer.effect4.ts)`,
          node: line4.version,
          of: (sc: Scenario) => controlOf(sc, "effect4-socket-server"),
          base: plain22Of
        }
      ]
      : [])
  ]
  const linesTable = [
    "| server | Node | stream (x plain's CPU per MB) | round trips (x plain's CPU per trip) | churn (x plain's CPU per connection) | idle KiB per connection (x plain's) | memory: 50 peers that never read, MiB RSS growth (x plain's) |",
    "|---|---|---|---|---|---|---|",
    ...lineRows.map(({ base, label, node, of }) =>
      `| ${label} | ${node} | ${lineScenarios.map((sc) => lineCell(sc, of(sc), base?.(sc))).join(" | ")} |`
    )
  ].join("\n")
  // What the Node version alone makes of plain Node, in the same rounds (higher is better).
  const nodeLine = "node" in line4
    ? `Plain Node ${line4.version} against plain Node ${machine.node}, round by round: stream ${
      roundsCell(byRound(controlOf("stream", "plain-node22"), samples.stream!.plain))
    }, round trips ${roundsCell(byRound(controlOf("rtt", "plain-node22"), samples.rtt!.plain))}, churn ${
      roundsCell(byRound(controlOf("churn", "plain-node22"), samples.churn!.plain))
    }.`
    : `The Effect 4 rows were not measured: ${machine.line4.missing}.`

  console.log(table)
  console.log()
  console.log(handlerTable)
  console.log()
  console.log(rpcLine)
  console.log()
  console.log(cpuTable)
  console.log(`\nround-trip latency: ${latency}`)
  console.log(`plain Node against itself (noise): stream ${againRatio("stream")}, round trips ${againRatio("rtt")}`)
  console.log()
  console.log(streamTable)
  console.log(controlLine)
  console.log()
  console.log(linesTable)
  console.log(nodeLine)

  if (!write) {
    console.log(
      `\nnothing written (${result.durationSeconds.toFixed(0)} s); npm run bench -- --write records these results`
    )
    return
  }
  fs.writeFileSync(
    path.join(root, "docs/benchmarks.svg"),
    chart(rows.map((r) => ({ label: r.scenario.name, ratios: r.ratio })))
  )
  // The packaging section is bench/packaging.ts's to write: kept as it is.
  const previous = fs.readFileSync(path.join(root, "docs/benchmarks.md"), "utf8")
  const packaging = /<!-- packaging:start -->[\s\S]*<!-- packaging:end -->/.exec(previous)?.[0]
  // And the workers section is bench/workers.ts's.
  const workersSection = /<!-- workers:start -->[\s\S]*<!-- workers:end -->/.exec(previous)?.[0]
  fs.writeFileSync(
    path.join(root, "docs/benchmarks.md"),
    `# Benchmarks

Generated by \`npm run bench -- --write\` (bench/run.ts) on ${result.date.slice(0, 10)}; raw results in
\`bench/results/latest.json\`. Do not edit by hand: run the bench again.

- Machine: ${machine.cpus}, ${machine.memory}, Linux ${machine.kernel}, Node ${machine.node},
  effect ${machine.effect}, @effect/platform-node ${machine.platformNode}.
- Command: \`npm run bench -- --write\` (BENCH_ROUNDS=${rounds}, BENCH_SECONDS=${seconds}); took ${
      result.durationSeconds.toFixed(0)
    } s.
- Each server is started fresh in its own process for each measurement; the servers take turns,
  in a rotated order each round; the load runs in a separate process (${
      result.loadGenerator === "node (bench/load.ts)"
        ? "bench/load.ts"
        : "bench/loadgen.c, in C on epoll, for churn and round trips, so that it costs a small part of what the server does and the server sets the pace; bench/load.ts for the rest"
    }),
  verifies every echoed byte, and counts (work and server CPU) only after a 0.5 s warm-up
  (BENCH_WARMUP) in which the fresh server compiles its hot path. Values are medians over ${rounds} rounds. Ratios are to plain Node
  (\`net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s))\`), computed pair by pair per
  round, then the median, with the lowest and highest round in brackets; oriented so that
  **above 1 is better** on every row (for memory, idle and shutdown: plain's value divided by
  the server's).

![ratios to plain Node](benchmarks.svg)

${table}

**Server CPU per connection under churn: ${churnCpu} of plain Node's** (round by round, lowest
and highest round in brackets; below 1 is cheaper). Server CPU time per unit of work, median over
rounds with the lowest and highest round, and what the load generator itself spent per unit
(steadier than throughput on a shared 2-core machine, where the load generator and the server
compete for the same cores):

${cpuTable}

## A handler of your own

The same loads, in the same rounds, against servers whose connections a user's handler serves:
each ratio is to plain Node, round by round (above 1 is better), with the server's CPU per unit
of work as a multiple of plain Node's in brackets (below 1 is cheaper). Idle memory is RSS per
connection with 10,000 open, and in brackets the multiple of plain Node's.

${handlerTable}

${rpcLine}

${handlerTargets}

The built-in echo at the default log level, and a handler of a user's own
(bench/servers/custom.ts: a stream echo with a fiber, a scope and a cleanup that waits on its
peer), against the built-in echo at \`--log-level error\` (the rows above), in the same rounds. At
\`info\` and below the server reads each peer's address when it admits it (a getpeername), so
that a peer that resets is still named in its record; at \`error\` no record names it, and the
address is not read:

${customTable}

Round-trip latency (medians of per-round percentiles): ${latency}.

Stream, decomposed: the same load against three controls, in the same rounds: plain Node's pipe in
a process that first loaded every module \`serve\` loads (bench/servers/plain-loaded.ts), and
plain Node and \`serve\` both started with glibc's trim threshold set in their environment, so
that neither pays for an unmapped heap top and only the echo paths differ. With the server's
minor page faults per MB streamed:

${streamTable}

${controlLine}

## Effect 3 and Effect 4

This package serves both Effect lines from one source (docs/effect4.md). The same loads, in the
same rounds, against each line's built-in echo (\`serve\`), the same Stream handler
(bench/servers/custom-noscope.ts, built for each line: compiled against dist/src with effect ${machine.effect},
and bundled by the bench against dist/effect4 with effect ${
      "node" in line4 ? machine.line4.effect : "4"
    }), and each line's own socket server:
@effect/platform-node ${machine.platformNode}'s \`NodeSocketServer\` with \`socket.run\` (idiomatic.ts),
and @effect/platform-node ${
      "node" in line4 ? machine.line4.platformNode : "4"
    }'s with its documented pull loop, \`writer.writeAll\` of each \`socket.reader\` pull
(socketServer.effect4.ts), both with half-close allowed. The Effect 4 line needs Node >= 22.19:
its servers run on Node ${
      "node" in line4 ? line4.version : "22"
    } (the registry's \`node\` package), and its base is plain Node on that same Node, measured in the same
rounds; the Effect 3 line's is plain Node on Node ${machine.node}, as in every table above. Each ratio is to
the plain Node of its line's Node, round by round (above 1 is better), with the server's CPU per
unit of work as a multiple of that plain Node's in brackets (below 1 is cheaper). Idle memory and
the memory of 50 peers that never read are the server's own figures, with the multiple of plain
Node's in brackets (below 1 is leaner). The plain Node rows give the base itself.

${linesTable}

${nodeLine}

## Targets
| target | measured |
|---|---|
| stream >= 0.9x plain | ${target(0)}; with the heap set alike for both: ${alikeRatio} |
| round trips >= 0.9x plain | ${target(1)} |
| stream and round trips stay >= 1.0x plain (and what noise alone makes of a ratio: plain Node against itself, in the same rounds) | stream ${
      target(0)
    }, plain Node again ${againRatio("stream")}; round trips ${target(1)}, plain Node again ${againRatio("rtt")} |
| churn >= 0.9x plain, with a load that saturates the server | ${target(2)} |
| server CPU per connection under churn within 1.1x of plain | ${churnCpu} |
| RSS growth with 50 stalled peers < 96 MiB | ${fmt(rows[3]!.perServer["effect-tcp-echo"].median)} MiB |
| idle memory per connection within 1.1x of plain | ${fmt(rows[4]!.perServer["effect-tcp-echo"].median)} KiB vs ${
      fmt(rows[4]!.perServer.plain.median)
    } KiB |
| shutdown with stalled peers within deadline (1 s) + 0.5 s | ${fmt(rows[5]!.perServer["effect-tcp-echo"].median)} s |

## Where the time goes (from \`node --cpu-prof\` of \`serve\` under each load)
- **Churn**: the built-in echo runs on Node's callbacks, with no fiber per connection: a
  connection is admitted in Node's 'connection' callback, is one object with shared methods and
  shared socket listeners, is tracked in the server's registry, and its echo waits without a
  canceler. A handler of your own adds a fiber per connection (its FiberRefs, with the peer's
  name as a log annotation, which costs a \`getpeername\` call), its \`Scope\`, and the garbage of
  both: the rows under "A handler of your own" above, and [handlers.md](handlers.md).
- **Stream**: the echo path costs close to what the pipe costs (the last two rows: within a tenth
  of the CPU per MB); what separated the servers was the kernel's time in page faults. Node reads each socket into a fresh 64 KiB buffer from malloc, and V8
  frees them in batches, at each collection (every 40 ms or so here, for "external memory
  pressure"). When a batch at the top of glibc's heap is freed, glibc gives that memory back
  (\`brk\`) and the next batch maps it again, a page fault for every 4 KiB the kernel copies a
  read into (\`perf\`: \`exc_page_fault\` and \`clear_page_erms\` under \`tcp_recvmsg\`). How much
  goes back depends on the heap's layout (\`strace\`: about 7 MiB per collection in plain Node's
  small process, the whole 32 MiB batch in one that loaded what \`serve\` loads: the control row).
  \`serve\` takes one step at start (src/internal/heap.ts): it frees a 32 MiB block glibc had
  mapped on its own, which makes glibc raise its trim threshold to 64 MiB (its documented dynamic
  threshold; its mmap threshold rises to 32 MiB with it, and what that costs in RSS is under
  "Idle memory" below and in heap.ts), and the faults fall to 0-5 per MB. Plain Node could take the same step; the last
  two rows give both the same setting by environment instead, and compare the echo paths alone.
- **Round trips**: the echo's write and its wait for the next read are Node callbacks, as the
  pipe's are; no fiber runs per trip.
- **Idle memory** per connection: Node's socket and the connection object (for a handler of your
  own, also a suspended fiber: its FiberRefs, the peer annotation, the continuation of its
  handler). The figure is RSS, so glibc's trimming shows here too: with \`serve\`'s heap step,
  memory freed while 10,000 connections are set up stays mapped; with
  \`MALLOC_TRIM_THRESHOLD_=131072\` the step does nothing and glibc trims at 128 KiB, which suits a
  server that holds many idle connections and streams little.
${packaging === undefined ? "" : `\n${packaging}\n`}${workersSection === undefined ? "" : `\n${workersSection}\n`}`
  )
  console.log(
    `\nwrote docs/benchmarks.md, docs/benchmarks.svg, bench/results/latest.json (${
      result.durationSeconds.toFixed(0)
    } s)`
  )
}

/** A horizontal bar chart of the ratios to plain Node, with the 1.0 line. */
const chart = (rows: ReadonlyArray<{ label: string; ratios: Record<string, number> }>) => {
  const width = 640
  const left = 90
  const barHeight = 14
  const group = 2 * barHeight + 14
  const height = 40 + rows.length * group + 30
  const max = Math.max(2, ...rows.flatMap((r) => Object.values(r.ratios).filter(Number.isFinite)))
  const x = (v: number) => left + (Math.min(v, max) / max) * (width - left - 60)
  const colors: Record<string, string> = { "effect-tcp-echo": "#2f6fdb", idiomatic: "#d9822b" }
  const bars = rows.map((row, i) => {
    const y = 30 + i * group
    return `<text x="${left - 8}" y="${y + barHeight + 4}" text-anchor="end">${row.label}</text>` +
      Object.entries(row.ratios).map(([name, v], j) =>
        `<rect x="${left}" y="${y + j * barHeight}" width="${Math.max(1, x(v) - left)}" height="${
          barHeight - 2
        }" fill="${colors[name]}"/>` +
        `<text x="${x(v) + 4}" y="${y + j * barHeight + barHeight - 3}">${v.toFixed(2)}x</text>`
      ).join("")
  }).join("\n")
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="${left}" y="16" font-size="12">Ratio to plain Node (above 1 is better)</text>
${bars}
<line x1="${x(1)}" y1="24" x2="${x(1)}" y2="${height - 24}" stroke="#444" stroke-dasharray="4 3"/>
<text x="${x(1)}" y="${height - 10}" text-anchor="middle">1.0 = plain Node</text>
<rect x="${width - 200}" y="${height - 22}" width="10" height="10" fill="${colors["effect-tcp-echo"]}"/><text x="${
    width - 186
  }" y="${height - 13}">effect-tcp-echo</text>
<rect x="${width - 100}" y="${height - 22}" width="10" height="10" fill="${colors.idiomatic}"/><text x="${
    width - 86
  }" y="${height - 13}">idiomatic</text>
</svg>
`
}

if (flags.includes("--workers")) {
  const child = spawn(process.execPath, [
    path.join(root, "dist/bench/workers.js"),
    ...flags.filter((f) => f === "--write")
  ], {
    stdio: "inherit"
  })
  child.once("exit", (code) => process.exit(code ?? 1))
} else {
  main().catch((error) => {
    console.error(error)
    process.exit(1)
  })
}
