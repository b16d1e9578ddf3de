/**
 * The package as a consumer meets it: `npm pack` (its prepack builds), then the tarball installed
 * in a scratch app with its peer dependencies from the registry, where the library's first
 * example (docs/library.md, "The server as an effect") must type-check (strict,
 * exactOptionalPropertyTypes) and run: it must print its address, echo what a peer sends, and
 * shut down gracefully on SIGINT. Also: one copy of effect in the app, the binary answering
 * --help from the app, and its `simulate` running a handler module of the app's own.
 *
 * One line's package at a time: `effect3` (the default) is the root package, packed as it is
 * published; `effect4` is dist/effect4 (`npm run build:effect4`), installed with Effect 4 and run
 * on the Node this script runs on (22.19 or later for that line).
 *
 * Needs the npm registry (CI has it): `npm run check:package` checks both lines, run by .ci/run.
 * Every step has a time bound; each line takes about a minute. Prints one line per check, then
 * `N passed, N failed`.
 */
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")
const line = process.argv[2] ?? "effect3"
if (line !== "effect3" && line !== "effect4") throw new Error(`unknown line ${line}: effect3 or effect4`)
// The package as it is packed, and where the line's development tools are pinned.
const packed = line === "effect3" ? root : path.join(root, "dist/effect4")
const tooling = line === "effect3" ? root : path.join(root, "test/effect4")
interface Manifest {
  readonly name: string
  readonly peerDependencies: Record<string, string>
  readonly devDependencies: Record<string, string>
}
const readManifest = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as Manifest
if (line === "effect4") execFileSync("npm", ["run", "build:effect4"], { cwd: root, stdio: "ignore", timeout: 300_000 })
const pkg = readManifest(packed)
const tools = { ...readManifest(root).devDependencies, ...readManifest(tooling).devDependencies }
console.log(`${line}: ${pkg.name} from ${path.relative(root, packed) || "."}, Node ${process.version}`)
const app = fs.mkdtempSync(path.join(os.tmpdir(), "echo-scratch-"))
const results: Array<{ name: string; ok: boolean; detail?: string }> = []

const check = async (name: string, body: () => Promise<void> | void) => {
  try {
    await body()
    results.push({ name, ok: true })
    console.log(`ok   ${name}`)
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error)
    results.push({ name, ok: false, detail })
    console.log(`FAIL ${name}\n     ${detail.split("\n").join("\n     ")}`)
  }
}

const sh = (command: string, args: ReadonlyArray<string>, cwd: string, timeout: number) =>
  execFileSync(command, args, { cwd, encoding: "utf8", timeout, stdio: ["ignore", "pipe", "pipe"] })

/** The library's first example: the first TypeScript block after "The server as an effect" in docs/library.md. */
const heading = "The server as an effect"
const libraryExample = () => {
  const doc = fs.readFileSync(path.join(root, "docs/library.md"), "utf8")
  const from = doc.indexOf(heading)
  const block = /```ts\n([\s\S]*?)```/.exec(doc.slice(from))
  if (from < 0 || block === null) throw new Error(`docs/library.md has no \`\`\`ts block after "${heading}"`)
  return block[1]!
}

let tarball = ""

await check("npm pack builds (prepack) and packs", () => {
  const out = sh("npm", ["pack", "--json", "--pack-destination", app], packed, 180_000)
  const json = out.slice(out.indexOf("["))
  tarball = path.join(app, (JSON.parse(json) as Array<{ filename: string }>)[0]!.filename)
  if (!fs.existsSync(tarball)) throw new Error(`no tarball at ${tarball}`)
})

await check("the tarball installs with its peer dependencies from the registry", () => {
  fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "scratch", private: true, type: "module" }))
  const peers = Object.entries(pkg.peerDependencies).map(([name, range]) => `${name}@${range}`)
  const dev = ["typescript", "@types/node"].map((name) => `${name}@${tools[name]}`)
  sh("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", tarball, ...peers, ...dev], app, 300_000)
})

await check("the app holds one copy of effect", () => {
  const copies = sh("npm", ["ls", "effect", "--all", "--parseable"], app, 60_000).split("\n").filter((l) =>
    l.trim() !== ""
  )
  if (new Set(copies).size !== 1) throw new Error(`effect installed ${copies.length} times:\n${copies.join("\n")}`)
})

const compilerOptions = {
  target: "ES2022",
  module: "NodeNext",
  moduleResolution: "NodeNext",
  strict: true,
  exactOptionalPropertyTypes: true,
  noUncheckedIndexedAccess: true,
  types: ["node"]
}

const tsc = (project: string) => {
  try {
    sh(process.execPath, [path.join(app, "node_modules/typescript/bin/tsc"), "-p", project], app, 120_000)
  } catch (error) {
    throw new Error(`tsc -p ${project}: ${(error as { stdout?: string }).stdout ?? String(error)}`)
  }
}

await check("the library's example type-checks (strict, exactOptionalPropertyTypes)", () => {
  fs.writeFileSync(path.join(app, "main.ts"), libraryExample())
  // skipLibCheck as Effect's own templates set it: @effect/platform-node's declarations import
  // `ws`, whose types it does not depend on. Ours are checked without it below.
  fs.writeFileSync(
    path.join(app, "tsconfig.json"),
    JSON.stringify({ compilerOptions: { ...compilerOptions, skipLibCheck: true, outDir: "out" }, files: ["main.ts"] })
  )
  tsc(".")
})

await check("every entry point resolves with its types, which type-check without skipLibCheck", () => {
  const exports = Object.keys(
    (JSON.parse(fs.readFileSync(path.join(app, `node_modules/${pkg.name}/package.json`), "utf8")) as {
      exports: Record<string, unknown>
    }).exports
  ).filter((key) => key !== "./package.json")
  fs.writeFileSync(
    path.join(app, "entries.ts"),
    exports.map((key, i) => `import * as E${i} from "${pkg.name}${key.slice(1)}"\nexport { E${i} }\n`).join("")
  )
  fs.writeFileSync(
    path.join(app, "tsconfig.entries.json"),
    JSON.stringify({
      compilerOptions: { ...compilerOptions, skipLibCheck: false, noEmit: true },
      files: ["entries.ts"]
    })
  )
  tsc("tsconfig.entries.json")
})

// NodeRuntime.runMain's exit after SIGINT interrupted the program: 0 on Effect 3; on Effect 4,
// 130, the shell's code for a program SIGINT ended (its defaultTeardown), once the scope closed.
const sigintExit = line === "effect3" ? 0 : 130

await check(
  `the library's example runs: listens, echoes, and exits ${sigintExit} on SIGINT`,
  () =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(app, "out/main.js")], {
        cwd: app,
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      let echoed = false
      const timer = setTimeout(() => {
        child.kill("SIGKILL")
        reject(new Error(`no graceful end within 30 s:\n${output}`))
      }, 30_000)
      const onData = (data: Buffer) => {
        output += data.toString()
        const match = /listening on 127\.0\.0\.1:(\d+)/.exec(output)
        if (match === null || echoed) return
        echoed = true
        const socket = net.connect(
          { host: "127.0.0.1", port: Number(match[1]) },
          () => socket.end("hello from a scratch app\n")
        )
        let back = ""
        socket.on("data", (d: Buffer) => (back += d.toString()))
        socket.on("error", reject)
        socket.on("end", () => {
          if (back !== "hello from a scratch app\n") return reject(new Error(`echo returned ${JSON.stringify(back)}`))
          child.kill("SIGINT")
        })
      }
      child.stdout.on("data", onData)
      child.stderr.on("data", onData)
      child.once("exit", (code, signal) => {
        clearTimeout(timer)
        if (!echoed) return reject(new Error(`exited (${code ?? signal}) before listening:\n${output}`))
        if (code !== sigintExit) return reject(new Error(`exit ${code ?? signal} after SIGINT:\n${output}`))
        resolve()
      })
    })
)

await check("the installed binary answers --help", () => {
  const help = sh(path.join(app, "node_modules/.bin/effect-tcp-echo"), ["--help"], app, 30_000)
  if (!help.includes("Usage: effect-tcp-echo")) throw new Error(help)
})

await check("the installed binary simulates a handler module of the app's own", () => {
  // Plain JavaScript, as an app writes it, importing the package and effect from its node_modules.
  fs.writeFileSync(
    path.join(app, "my-handler.js"),
    [
      `import { Stream } from "effect"`,
      `import { TestKit } from "${pkg.name}"`,
      `export default (connection) => Stream.runForEach(connection.stream, connection.write)`,
      `export const protocol = TestKit.echo`
    ].join("\n")
  )
  const out = sh(
    path.join(app, "node_modules/.bin/effect-tcp-echo"),
    ["simulate", "--handler", "./my-handler.js", "--runs", "50", "--seed", "1"],
    app,
    120_000
  )
  const line = JSON.parse(out) as { runs: number; failures: number }
  if (line.runs !== 50 || line.failures !== 0) throw new Error(out)
})

fs.rmSync(app, { recursive: true, force: true })
const failed = results.filter((r) => !r.ok).length
console.log(`${results.length - failed} passed, ${failed} failed`)
process.exitCode = failed === 0 ? 0 : 1
