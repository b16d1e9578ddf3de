/**
 * What the package costs a consumer, measured on two builds of it in the same run (a checkout
 * before a change and one after, each already built): installed size, the time `import` takes
 * against `import "effect"` alone, the binary's time to its `listening on` line, and the open
 * files it needs to start. Each build is packed (`npm pack --ignore-scripts`) and installed
 * from the registry in scratch apps, as a consumer installs it:
 * - library: what docs/library.md's example needs (the package, and for peer dependencies the peers);
 * - core: the package with only the peers the library imports (effect, @effect/platform);
 * - CLI: `npm install` of the package alone (npm adds required peers by itself).
 *
 *   npx tsx bench/packaging.ts --before DIR [--before-label TEXT] [--after DIR] [--rounds N] [--write]
 *
 * Timings alternate between the builds round by round, in a rotated order; medians are reported with the range.
 * `--write` replaces the packaging section of docs/benchmarks.md (bench/run.ts keeps it).
 */
import { execFileSync, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")
const args = process.argv.slice(2)
const option = (name: string) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}
const beforeDir = option("--before")
if (beforeDir === undefined) {
  console.error("usage: npx tsx bench/packaging.ts --before DIR [--after DIR] [--rounds N] [--write]")
  process.exit(2)
}
const sides = { before: path.resolve(beforeDir), after: path.resolve(option("--after") ?? root) } as const
type Side = keyof typeof sides
const beforeLabel = option("--before-label") ?? `\`${path.basename(sides.before)}\``
const rounds = Number(option("--rounds") ?? 15)
const write = args.includes("--write")
const work = fs.mkdtempSync(path.join(os.tmpdir(), "echo-packaging-"))
const load = [os.loadavg()[0]!]

const sh = (command: string, argv: ReadonlyArray<string>, cwd: string, timeout = 300_000) =>
  execFileSync(command, argv, { cwd, encoding: "utf8", timeout, stdio: ["ignore", "pipe", "pipe"] })

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
const range = (xs: ReadonlyArray<number>, digits = 0) =>
  `${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}`

// --- Installs.

const manifest = (side: Side) =>
  JSON.parse(fs.readFileSync(path.join(sides[side], "package.json"), "utf8")) as {
    name: string
    version: string
    bin: Record<string, string>
    peerDependencies?: Record<string, string>
    peerDependenciesMeta?: Record<string, { optional?: boolean }>
  }

const packed = Object.fromEntries(
  (Object.keys(sides) as Array<Side>).map((side) => {
    const dir = path.join(work, `pack-${side}`)
    fs.mkdirSync(dir)
    const out = sh("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], sides[side])
    const [info] = JSON.parse(out.slice(out.indexOf("["))) as Array<
      { filename: string; size: number; unpackedSize: number }
    >
    return [side, { tarball: path.join(dir, info!.filename), size: info!.size, unpackedSize: info!.unpackedSize }]
  })
) as Record<Side, { tarball: string; size: number; unpackedSize: number }>
const tarballs = { before: packed.before.tarball, after: packed.after.tarball }

type Scenario = "library" | "core" | "cli"
const peersFor = (side: Side, scenario: Scenario) => {
  const { peerDependencies = {}, peerDependenciesMeta = {} } = manifest(side)
  return Object.entries(peerDependencies)
    .filter(([name]) =>
      scenario === "library" || (scenario === "core" && peerDependenciesMeta[name]?.optional !== true)
    )
    .map(([name, range]) => `${name}@${range}`)
}

const install = (side: Side, scenario: Scenario) => {
  const dir = path.join(work, `${side}-${scenario}`)
  fs.mkdirSync(dir)
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "scratch", private: true, type: "module" }))
  const packages = scenario === "cli" ? [tarballs[side]] : [tarballs[side], ...peersFor(side, scenario)]
  sh("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", ...packages], dir)
  const bytes = Number(sh("du", ["-sb", "node_modules"], dir).split("\t")[0])
  const count =
    sh("npm", ["ls", "--all", "--parseable"], dir).split("\n").filter((l) => l.includes("node_modules")).length
  return { dir, bytes, count }
}

const installs = Object.fromEntries(
  (Object.keys(sides) as Array<Side>).map((side) => [
    side,
    { library: install(side, "library"), core: install(side, "core"), cli: install(side, "cli") }
  ])
) as Record<Side, Record<Scenario, { dir: string; bytes: number; count: number }>>

// --- Import time: in a fresh process each, from the library install; performance.now() around
// the dynamic import, so that Node's own start is not counted.

const importOnce = (cwd: string, specifier: string) => {
  const result = spawnSync(process.execPath, [
    "--input-type=module",
    "-e",
    `const t = performance.now(); await import(${JSON.stringify(specifier)}); ` +
    `console.log(JSON.stringify({ ms: performance.now() - t, rss: process.memoryUsage().rss }))`
  ], { cwd, encoding: "utf8", timeout: 60_000 })
  if (result.status !== 0) throw new Error(`import ${specifier} in ${cwd}: ${result.stderr}`)
  return JSON.parse(result.stdout) as { ms: number; rss: number }
}

const name = manifest("after").name
const imports: Record<string, { side: Side; specifier: string; ms: Array<number>; rss: Array<number> }> = {}
const importCases: Array<[Side, string]> = [
  ["before", "effect"],
  ["before", name],
  ["after", "effect"],
  ["after", name],
  ["after", `${name}/Server`]
]
for (let round = 0; round < rounds; round++) {
  for (const [side, specifier] of round % 2 === 0 ? importCases : [...importCases].reverse()) {
    const key = `${side} ${specifier}`
    const sample = importOnce(installs[side].library.dir, specifier)
    imports[key] ??= { side, specifier, ms: [], rss: [] }
    imports[key].ms.push(sample.ms)
    imports[key].rss.push(sample.rss)
  }
}

// --- Time to `listening on`, from spawn, for the binary of the CLI install.

// The JavaScript the command runs: the bin itself, or, where the bin is the shell script that
// checks the open-files limit first (src/bin.sh), the bin.js beside it, which it execs.
const binOf = (side: Side) => {
  const command = path.join(installs[side].cli.dir, "node_modules", name, Object.values(manifest(side).bin)[0]!)
  return command.endsWith(".js") ? command : path.join(path.dirname(command), "bin.js")
}
// The after build's binary once more, copied beside its bundle and without its code cache
// (src/bin.ts), to show what the cache saves; when the after build has one.
const uncached = (() => {
  const dir = path.dirname(binOf("after"))
  if (!fs.existsSync(path.join(dir, "main.cjs.cache"))) return undefined
  const copy = path.join(work, "uncached")
  fs.mkdirSync(copy)
  fs.writeFileSync(path.join(copy, "package.json"), JSON.stringify({ type: "module" }))
  for (const file of ["bin.js", "main.cjs"]) fs.copyFileSync(path.join(dir, file), path.join(copy, file))
  return path.join(copy, "bin.js")
})()
type Series = Side | "uncached"
const binFor = (series: Series) => series === "uncached" ? uncached! : binOf(series)
const listenOnce = (series: Series) =>
  new Promise<number>((resolve, reject) => {
    const started = performance.now()
    const child = spawn(process.execPath, [binFor(series), "serve", "--port", "0"], {
      stdio: ["ignore", "pipe", "ignore"]
    })
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
    let out = ""
    child.stdout.on("data", (data: Buffer) => {
      out += data.toString()
      if (out.includes("listening on")) {
        const ms = performance.now() - started
        child.kill("SIGKILL")
        clearTimeout(timer)
        resolve(ms)
      }
    })
    child.once("exit", () => {
      clearTimeout(timer)
      if (!out.includes("listening on")) reject(new Error(`${series}: serve exited before listening`))
    })
  })
const series: ReadonlyArray<Series> = uncached === undefined ? ["before", "after"] : ["before", "after", "uncached"]
const listening: Record<Series, Array<number>> = { before: [], after: [], uncached: [] }
for (let round = 0; round < rounds; round++) {
  // Each round in another order, so that none is always first.
  for (let i = 0; i < series.length; i++) {
    const one = series[(i + round) % series.length]!
    listening[one].push(await listenOnce(one))
  }
}

// --- Open files needed to start: the least limit at which it starts (binary search between 8
// and 1024, each limit tried once per search), three searches each, spawned with only stdio.

const startsUnder = (side: Side, limit: number, argv: ReadonlyArray<string>) =>
  new Promise<boolean>((resolve) => {
    const child = spawn("prlimit", [`--nofile=${limit}:${limit}`, process.execPath, binOf(side), ...argv], {
      stdio: ["ignore", "pipe", "ignore"]
    })
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000)
    let out = ""
    let ok = false
    child.stdout.on("data", (data: Buffer) => {
      out += data.toString()
      if (!ok && (out.includes("listening on") || out.includes("Usage:"))) {
        ok = true
        child.kill("SIGKILL")
      }
    })
    child.once("close", () => {
      clearTimeout(timer)
      resolve(ok)
    })
  })
const least = async (side: Side, argv: ReadonlyArray<string>) => {
  let low = 8
  let high = 1024
  while (low < high) {
    const mid = Math.floor((low + high) / 2)
    if (await startsUnder(side, mid, argv)) high = mid
    else low = mid + 1
  }
  return low
}
const descriptors: Record<string, Array<number>> = {}
for (const [label, argv] of [["serve", ["serve"]], ["--help", ["--help"]]] as const) {
  for (const side of ["before", "after"] as const) {
    const key = `${side} ${label}`
    descriptors[key] = []
    for (let i = 0; i < 3; i++) descriptors[key].push(await least(side, argv))
  }
}
load.push(os.loadavg()[0]!)

// --- Report.

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`
const imp = (side: Side, specifier: string) => imports[`${side} ${specifier}`]!
const ratio = (side: Side, specifier: string) => {
  const base = imp(side, "effect").ms
  return imp(side, specifier).ms.map((ms, i) => ms / base[i]!)
}
const machine = `${os.cpus().length} x ${os.cpus()[0]?.model.trim() ?? "cpu"}, Node ${process.version}, ` +
  `load average ${load[0]!.toFixed(1)} at start and ${load[1]!.toFixed(1)} at the end`
const importRow = (side: Side, specifier: string) => {
  const r = ratio(side, specifier)
  const s = imp(side, specifier)
  return `| ${side} | \`import "${specifier}"\` | ${median(s.ms).toFixed(0)} (${range(s.ms)}) | ${
    median(r).toFixed(2)
  }x (${range(r, 2)}) | ${(median(s.rss) / 1024 / 1024).toFixed(0)} MB |`
}
const bundledBinary = ["main.cjs", "bin.js"].map((file) => path.join(sides.after, "dist/src", file))
  .find((file) => fs.existsSync(file))!
const listenRatio = listening.after.map((ms, i) => ms / listening.before[i]!)
const cacheRatio = listening.after.map((ms, i) => ms / listening.uncached[i]!)
const installRow = (scenario: Scenario, label: string) =>
  `| ${label} | ${mb(installs.before[scenario].bytes)}, ${installs.before[scenario].count} packages | ${
    mb(installs.after[scenario].bytes)
  }, ${installs.after[scenario].count} packages |`

const section = `<!-- packaging:start -->
## Packaging: install size, import time, start time

Generated by \`npx tsx bench/packaging.ts --before DIR --write\` on ${new Date().toISOString().slice(0, 10)}:
${machine}. "before" is ${manifest("before").name} ${manifest("before").version} as built from
${beforeLabel}, "after" this checkout; both packed with \`npm pack\` and installed from
the registry in scratch apps. Timings alternate between the builds round by round, in a rotated order, ${rounds} rounds;
medians, with the lowest and highest in brackets.

The package itself (\`npm pack\`): before ${mb(packed.before.size)} packed, ${mb(packed.before.unpackedSize)} unpacked;
after ${mb(packed.after.size)} packed, ${mb(packed.after.unpackedSize)} unpacked (the bundled binary:
${mb(fs.statSync(bundledBinary).size)}${
  fs.existsSync(`${bundledBinary}.cache`)
    ? `, and its V8 code cache ${mb(fs.statSync(`${bundledBinary}.cache`).size)}`
    : ""
}).

Installed (\`du -sb node_modules\`, and the packages \`npm ls --all\` lists):

| install | before | after |
|---|---|---|
${installRow("library", "library: docs/library.md's example (the package and, after, its three peers)")}
${installRow("core", "library without @effect/platform-node (after: its required peers only)")}
${installRow("cli", "CLI: `npm install effect-tcp-echo` alone")}

Import time: a fresh \`node\` per sample, \`performance.now()\` around \`await import(...)\` (Node's own start not
counted), from the library install; the ratio is to \`import "effect"\` in the same round; RSS after the import:

| build | import | ms | to \`import "effect"\` | RSS |
|---|---|---|---|---|
${importRow("before", "effect")}
${importRow("before", name)}
${importRow("after", "effect")}
${importRow("after", name)}
${importRow("after", `${name}/Server`)}

Time to the \`listening on\` line: from spawning \`node .../bin.js serve --port 0\` of the CLI install to that
line on stdout: before ${median(listening.before).toFixed(0)} ms (${range(listening.before)}), after
${median(listening.after).toFixed(0)} ms (${range(listening.after)}); after / before, round by round:
${median(listenRatio).toFixed(2)}x (${range(listenRatio, 2)}).${
  uncached === undefined ? "" : `
The after build's binary without its V8 code cache (a copy of bin.js and main.cjs, timed in the same rounds):
${median(listening.uncached).toFixed(0)} ms (${range(listening.uncached)}); with the cache / without, round by round:
${median(cacheRatio).toFixed(2)}x (${range(cacheRatio, 2)}).`
}

Open files needed to start (\`prlimit --nofile=N:N\`, the least N at which \`serve\` prints its address or
\`--help\` its usage within 15 s, by binary search, 3 searches each, spawned with only stdin, stdout and
stderr open): \`serve\` before ${descriptors["before serve"]!.join(", ")}, after ${
  descriptors["after serve"]!.join(", ")
};
\`--help\` before ${descriptors["before --help"]!.join(", ")}, after ${descriptors["after --help"]!.join(", ")}.
<!-- packaging:end -->`

console.log(section)
if (write) {
  const doc = path.join(root, "docs/benchmarks.md")
  const text = fs.readFileSync(doc, "utf8")
  const start = text.indexOf("<!-- packaging:start -->")
  const end = text.indexOf("<!-- packaging:end -->")
  const next = start >= 0 && end > start
    ? text.slice(0, start) + section + text.slice(end + "<!-- packaging:end -->".length)
    : `${text.trimEnd()}\n\n${section}\n`
  fs.writeFileSync(doc, next)
  console.log("\nwrote the packaging section of docs/benchmarks.md")
}
fs.rmSync(work, { recursive: true, force: true })
