/**
 * The package as npm would publish it (`npm pack` of what `npm run build` made): what it ships,
 * what publint and arethetypeswrong say of it, a core entry that loads no exporter and no CLI,
 * and a binary that is one bundle, run with V8's code cache, and starts under a low open-files limit. All offline: the
 * tarball is installed in a scratch app, from the registry, by test/scratch-app.ts (.ci/run).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { execFileSync, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { isBuiltin } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { publint } from "publint"
import { bin, hasPrlimit, run, serve } from "./utils/cli.js"

const root = path.resolve(import.meta.dirname, "..")
const bundle = path.join(path.dirname(bin), "main.cjs")
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as {
  readonly exports: Record<string, string | { readonly types: string; readonly default: string }>
  readonly bin: Record<string, string>
  readonly peerDependencies: Record<string, string>
  readonly dependencies?: Record<string, string>
  readonly version: string
}
const packageVersion = pkg.version

let scratch: string
let tarball: string
let files: ReadonlyArray<string>

beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "echo-pack-"))
  // dist/ is built by `npm test` before vitest runs; prepack (the same build) is not run again.
  const out = execFileSync("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", scratch], {
    cwd: root,
    encoding: "utf8",
    timeout: 60_000
  })
  const [packed] = JSON.parse(out) as Array<{ filename: string; files: Array<{ path: string }> }>
  tarball = path.join(scratch, packed!.filename)
  files = packed!.files.map((f) => f.path)
})

afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }))

describe("package", () => {
  it("ships LICENSE, the bundled binary and every export's file, and none of the CLI's modules", () => {
    expect(files).toContain("LICENSE")
    expect(files).toContain(pkg.bin["effect-tcp-echo"]!.replace(/^\.\//, ""))
    expect(files).toContain("dist/src/bin.js")
    expect(files).toContain("dist/src/main.cjs")
    expect(files).toContain("dist/src/main.cjs.cache")
    for (const target of Object.values(pkg.exports)) {
      for (const file of typeof target === "string" ? [target] : [target.types, target.default]) {
        expect(files).toContain(file.replace(/^\.\//, ""))
      }
    }
    expect(
      files.filter((f) =>
        /^dist\/src\/(Cli\.|internal\/cli\/|internal\/(flags|signals|heap|early|makeCodeCache)\.)/.test(f)
      )
    )
      .toEqual([])
  })

  it("has two dependencies of its own, fast-check (the kit's arbitraries) and the PROXY parser; effect and @effect/platform are peers", () => {
    expect(Object.keys(pkg.dependencies ?? {})).toEqual(["fast-check", "proxy-protocol-js"])
    expect(Object.keys(pkg.peerDependencies).sort()).toEqual(["@effect/platform", "@effect/platform-node", "effect"])
  })

  it("publint reports nothing, suggestions included", async () => {
    const { messages } = await publint({
      pack: { tarball: fs.readFileSync(tarball).buffer as ArrayBuffer },
      level: "suggestion",
      strict: true
    })
    expect(messages).toEqual([])
  })

  it("arethetypeswrong reports nothing for an ESM-only package (node10 types, node16 from ESM, bundlers)", () => {
    const result = spawnSync(
      process.execPath,
      [
        path.join(root, "node_modules/@arethetypeswrong/cli/dist/index.js"),
        tarball,
        "--profile",
        "esm-only",
        "--format",
        "json"
      ],
      { encoding: "utf8", timeout: 120_000 }
    )
    expect(result.status, result.stderr).toBe(0)
    const { problems } = JSON.parse(result.stdout) as {
      problems: Record<string, Array<{ resolutionKind?: string; entrypoint?: string }>>
    }
    // The ESM-only profile leaves out one resolution only: a require() from CommonJS (node16-cjs),
    // which an ESM-only package answers with "use import()". node10 (typesVersions) is counted.
    const counted = Object.entries(problems).flatMap(([kind, list]) =>
      list.filter((p) => p.resolutionKind !== "node16-cjs").map((p) => `${kind} ${p.entrypoint}`)
    )
    expect(counted).toEqual([])
  })
})

/** The subpath entry points (`effect-tcp-echo/Server`, ...), by module name. */
const subpaths = Object.keys(pkg.exports).filter((key) => key !== "." && key !== "./package.json").map((key) =>
  key.slice(2)
)
/**
 * The subpaths whose module exports itself under its own name, so that `import { X } from
 * "effect-tcp-echo/X"` is the namespace the root gives: all but KernelLimits, whose `KernelLimits`
 * is its service's tag (a class, which a namespace of the same name cannot merge with).
 */
const named = subpaths.filter((name) => name !== "KernelLimits")

describe("the published declarations", () => {
  it("no published .d.ts says @internal: internal items are stripped from them", () => {
    const declarations = files.filter((f) => f.endsWith(".d.ts"))
    expect(declarations.length).toBeGreaterThan(subpaths.length)
    const marked = declarations.filter((f) => fs.readFileSync(path.join(root, f), "utf8").includes("@internal"))
    expect(marked).toEqual([])
  })

  it("a consumer type-checks against them without skipLibCheck, each entry in both import forms", () => {
    // Inside the package, so that `effect-tcp-echo/X` resolves through package.json's exports (a
    // package's self-reference) to dist, and effect to this repository's node_modules.
    const dir = fs.mkdtempSync(path.join(root, "test", ".consumer-"))
    try {
      const lines = named.flatMap((name, i) => [
        `import * as A${i} from "effect-tcp-echo/${name}"`,
        `import { ${name} as B${i} } from "effect-tcp-echo/${name}"`,
        // The named namespace is the module: every member, values and types.
        `export const same${i}: typeof A${i} = B${i}`
      ])
      fs.writeFileSync(
        path.join(dir, "consumer.ts"),
        [
          `import * as Root from "effect-tcp-echo"`,
          ...subpaths.map((name, i) => `export * as C${i} from "effect-tcp-echo/${name}"`),
          `import { KernelLimits } from "effect-tcp-echo/KernelLimits"`,
          `export const tag: typeof Root.KernelLimits.KernelLimits = KernelLimits`,
          ...lines,
          `import { Workers } from "effect-tcp-echo/Workers"`,
          `import { Prometheus } from "effect-tcp-echo/Prometheus"`,
          `export const workers: Workers.Options = { workers: 1, exec: "worker.js" }`,
          `export const make: (options: Workers.Options) => unknown = Workers.make`,
          `export const metrics: Prometheus.Options = { port: 0 }`,
          `export const server: typeof Root.Server.make = Root.Server.make`,
          ""
        ].join("\n")
      )
      fs.writeFileSync(
        path.join(dir, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            target: "ES2022",
            module: "NodeNext",
            moduleResolution: "NodeNext",
            strict: true,
            exactOptionalPropertyTypes: true,
            noUncheckedIndexedAccess: true,
            skipLibCheck: false,
            noEmit: true,
            types: ["node"]
          },
          files: ["consumer.ts"]
        })
      )
      const tsc = spawnSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", dir], {
        cwd: root,
        encoding: "utf8",
        timeout: 120_000
      })
      // The package's own declarations only: a dependency's are its own business.
      const ours = tsc.stdout.split("\n").filter((line) => !/^node_modules\//.test(line) && line.trim() !== "")
      expect(ours).toEqual([])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)

  it("each subpath gives its module both ways: as the namespace import, and as a named namespace", () => {
    expect(named.length).toBe(subpaths.length - 1)
    const script = named.map((name) =>
      `{ const all = await import("effect-tcp-echo/${name}"); ` +
      `if (all.${name} !== all || Object.keys(all).length < 2) ` +
      `throw new Error("${name}: the named namespace is not the module") }`
    ).join("\n")
    const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      cwd: root,
      encoding: "utf8",
      timeout: 60_000
    })
    expect(result.stderr).toBe("")
    expect(result.status).toBe(0)
  })
})

/** Every module file the built entry reaches, and every bare specifier it imports, statically. */
const graph = (entry: string) => {
  const modules = new Set<string>()
  const packages = new Set<string>()
  const loadedLater = new Set<string>()
  const visit = (file: string) => {
    if (modules.has(file)) return
    modules.add(file)
    const text = fs.readFileSync(file, "utf8")
    for (
      const match of text.matchAll(
        /(?:^|\n)\s*(?:import|export)[^"'\n]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g
      )
    ) {
      const specifier = (match[1] ?? match[2])!
      if (specifier.startsWith(".")) visit(path.resolve(path.dirname(file), specifier))
      else if (match[1] === undefined) loadedLater.add(specifier)
      else packages.add(specifier)
    }
  }
  visit(entry)
  return {
    modules: [...modules].map((m) => path.relative(path.join(root, "dist/src"), m)),
    packages: [...packages],
    loadedLater: [...loadedLater]
  }
}

describe("the core entry", () => {
  it("reaches no metrics exporter and no CLI code, and imports only effect, @effect/platform, fast-check and node:", () => {
    const { loadedLater, modules, packages } = graph(path.join(root, "dist/src/index.js"))
    expect(modules).toContain("Server.js")
    expect(
      modules.filter((m) =>
        /^(Prometheus|Cli)\.js$|^internal\/cli\/|^internal\/(flags|signals|heap|early)\.js$/.test(m)
      )
    ).toEqual(
      []
    )
    expect(packages.filter((p) => !/^(effect|@effect\/platform\/[A-Za-z]+|fast-check|node:[a-z_/]+)$/.test(p))).toEqual(
      []
    )
    // The PROXY parser is loaded by a server that takes the protocol, not by the import.
    expect(loadedLater).toEqual(["proxy-protocol-js"])
  })

  it("loads no HTTP server when imported (what Prometheus would need)", () => {
    const result = spawnSync(process.execPath, [
      "--input-type=module",
      "-e",
      `await import(${
        JSON.stringify(path.join(root, "dist/src/index.js"))
      }); console.log(process.moduleLoadList.filter((m) => /^NativeModule (http|_http_server)$/.test(m)).join(","))`
    ], { encoding: "utf8", timeout: 30_000 })
    expect(result.status, result.stderr).toBe(0)
    expect(result.stdout.trim()).toBe("")
  })
})

/** Runs the binary under an open-files limit until it exits, or until it listens (then stopped). */
const startUnder = (limit: number, args: ReadonlyArray<string>) =>
  new Promise<{ listening: boolean; status: number | null; stderr: string }>((resolve) => {
    const child = spawn("prlimit", [`--nofile=${limit}:${limit}`, process.execPath, bin, ...args], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    let listening = false
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
    child.stdout.on("data", (data: Buffer) => {
      stdout += data.toString()
      if (!listening && stdout.startsWith("listening on")) {
        listening = true
        child.kill("SIGKILL")
      }
    })
    child.stderr.on("data", (data: Buffer) => (stderr += data.toString()))
    child.once("close", (status) => {
      clearTimeout(timer)
      resolve({ listening, status, stderr })
    })
  })

describe("the binary", () => {
  it("is one bundle and its loader: they import nothing but Node's own modules", () => {
    for (const file of [bin, bundle]) {
      const text = fs.readFileSync(file, "utf8")
      const imports = [
        ...text.matchAll(
          /(?:^|\n)import[^"'\n]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|require\(\s*["']([^"']+)["']\s*\)/g
        )
      ]
        .map((m) => (m[1] ?? m[2] ?? m[3])!)
      expect(imports.filter((s) => !isBuiltin(s)), file).toEqual([])
    }
    // The loader compiles the bundle with node:vm and no dynamic-import callback: an import()
    // there would fail when reached.
    expect(fs.readFileSync(bundle, "utf8")).not.toContain("import(")
  })

  describe("its code cache", () => {
    // A copy of the binary in a directory of its own (removed after the tests), with what a case
    // changes in it.
    const dirs: Array<string> = []
    const inCopy = (change: (dir: string) => void) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "echo-cache-"))
      dirs.push(dir)
      fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ type: "module" }))
      for (const file of ["bin.js", "main.cjs", "main.cjs.cache"]) {
        fs.copyFileSync(path.join(path.dirname(bin), file), path.join(dir, file))
      }
      change(dir)
      return dir
    }
    const version = (dir: string, mode = "report") => {
      const result = spawnSync(process.execPath, [path.join(dir, "bin.js"), "--version"], {
        encoding: "utf8",
        env: { ...process.env, EFFECT_TCP_ECHO_CODE_CACHE: mode },
        timeout: 30_000
      })
      return { status: result.status, stdout: result.stdout.trim(), stderr: result.stderr }
    }
    afterAll(() => dirs.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })))

    it("the build's is used", () => {
      expect(version(path.dirname(bin))).toEqual({
        status: 0,
        stdout: `effect-tcp-echo ${packageVersion}`,
        stderr: "code cache: used\n"
      })
    })

    it("one made from other source of the same length is not used: the new source is what runs", () => {
      // V8 itself compares only the source's length: it would run the old bytecode.
      const dir = inCopy((dir) => {
        const file = path.join(dir, "main.cjs")
        const text = fs.readFileSync(file, "utf8")
        expect(text).toContain(`version: "${packageVersion}"`)
        fs.writeFileSync(
          file,
          text.replace(`version: "${packageVersion}"`, `version: "${packageVersion.replace(/^./, "9")}"`)
        )
      })
      expect(version(dir)).toEqual({
        status: 0,
        stdout: `effect-tcp-echo ${packageVersion.replace(/^./, "9")}`,
        stderr: "code cache: made from other source\n"
      })
    })

    it("one V8 rejects, or none, leaves the program compiled from source", () => {
      const corrupt = inCopy((dir) => {
        const file = path.join(dir, "main.cjs.cache")
        fs.writeFileSync(file, Buffer.concat([fs.readFileSync(file).subarray(0, 32), Buffer.alloc(4096, 7)]))
      })
      const none = inCopy((dir) => fs.rmSync(path.join(dir, "main.cjs.cache")))
      for (const [dir, verdict] of [[corrupt, "rejected by V8"], [none, "absent"]] as const) {
        expect(version(dir)).toEqual({
          status: 0,
          stdout: `effect-tcp-echo ${packageVersion}`,
          stderr: `code cache: ${verdict}\n`
        })
      }
      // Without the variable, nothing is said.
      expect(version(none, "")).toEqual({ status: 0, stdout: `effect-tcp-echo ${packageVersion}`, stderr: "" })
    })

    it("without its program, the binary says so in one line", () => {
      const dir = inCopy((dir) => fs.rmSync(path.join(dir, "main.cjs")))
      const result = version(dir, "")
      expect(result.status).toBe(1)
      expect(result.stderr).toBe(
        `effect-tcp-echo: cannot read the program, ${
          path.join(dir, "main.cjs")
        } (ENOENT); reinstall the package, or run npm run build\n`
      )
    })

    it("write makes one at exit that the next start uses", () => {
      const dir = inCopy((dir) => fs.rmSync(path.join(dir, "main.cjs.cache")))
      expect(version(dir, "write")).toEqual({ status: 0, stdout: `effect-tcp-echo ${packageVersion}`, stderr: "" })
      expect(version(dir).stderr).toBe("code cache: used\n")
    })
  })

  it.runIf(hasPrlimit)("--help and serve start under prlimit --nofile=64", async () => {
    const help = spawnSync("prlimit", ["--nofile=64:64", process.execPath, bin, "--help"], {
      encoding: "utf8",
      timeout: 30_000
    })
    expect(help.status, help.stderr).toBe(0)
    expect(help.stdout).toContain("Usage: effect-tcp-echo")
    const server = await serve([], {}, ["prlimit", "--nofile=64:64"])
    expect(server.address.host).toBe("127.0.0.1")
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
  })

  it.runIf(hasPrlimit)("the command says in one line when the limit is below what Node needs to start", () => {
    // As npm installs it: a relative link in node_modules/.bin, node found on PATH.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "echo-bin-"))
    const link = path.join(dir, "effect-tcp-echo")
    fs.symlinkSync(path.relative(dir, path.join(root, pkg.bin["effect-tcp-echo"]!)), link)
    const env = { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH}` }
    const under = (limit: number) =>
      spawnSync("prlimit", [`--nofile=${limit}:${limit}`, link, "--help"], { encoding: "utf8", env, timeout: 30_000 })
    try {
      // Below 19 descriptors Node 20 dies while it loads (a stack, or a crash and no word).
      for (const limit of [16, 18, 24, 31]) {
        const result = under(limit)
        expect(result.status).toBe(1)
        expect(result.stderr).toBe(
          `effect-tcp-echo: the open-files limit is ${limit}, and Node needs at least 32 to start; raise it (ulimit -n 1024)\n`
        )
      }
      const help = under(32)
      expect(help.status, help.stderr).toBe(0)
      expect(help.stdout).toContain("Usage: effect-tcp-echo")
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it.runIf(hasPrlimit)("below what serve needs to listen, it says so in one line, not a stack", async () => {
    // Upwards from below what Node itself needs, until serve listens (bounded): with the metrics
    // listener taking one more descriptor, there is a limit where Node starts and the echo
    // listener cannot be opened.
    let said: string | undefined
    for (let limit = 12; limit <= 64; limit++) {
      const result = await startUnder(limit, ["serve", "--metrics-port", "0"])
      if (result.listening) break
      if (result.stderr.startsWith("effect-tcp-echo: ")) {
        expect(result.status).toBe(1)
        expect(result.stderr.trimEnd().split("\n")).toHaveLength(1)
        said = result.stderr.trim()
      }
    }
    expect(said).toMatch(
      /^effect-tcp-echo: (cannot serve metrics: )?cannot listen on 127\.0\.0\.1:0: no file descriptor left \(EMFILE\).*raise the limit with ulimit -n/
    )
  })

  it("runs as a user runs it, from its own path", () => {
    const result = run(["--version"])
    expect(result.status).toBe(0)
    expect(result.stdout).toMatch(/^effect-tcp-echo \d+\.\d+\.\d+/)
  })
})
