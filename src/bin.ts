#!/usr/bin/env node
/**
 * The `effect-tcp-echo` binary: runs the program (main.ts, bundled into dist/src/main.cjs) with
 * V8's code cache, made by `npm run build` (internal/makeCodeCache.ts), so that V8 reads the
 * bytecode of what `serve` runs instead of parsing and compiling the whole bundle at every start
 * (what it saves: docs/benchmarks.md).
 *
 * The cache is checked before use: it starts with the SHA-256 of the bundle it was made from, and
 * one made from other source is not used (V8 itself checks only the source's length). V8 rejects
 * a cache made by another V8 (another Node) or with other flags; the program then starts as it
 * would without one, compiled from source. Nothing here writes a file, except for the build.
 *
 * `EFFECT_TCP_ECHO_CODE_CACHE`: unset, the cache is used when it fits; `report`, one line on
 * stderr also says whether it was (`code cache: used`, `rejected by V8`, `made from other source`
 * or `absent`); `write` is the build's: no cache is read, and one is written at exit from what the
 * run compiled. Deleting the file does without it.
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as vm from "node:vm"

const bundle = path.join(path.dirname(fileURLToPath(import.meta.url)), "main.cjs")
const cacheFile = `${bundle}.cache`
const mode = process.env.EFFECT_TCP_ECHO_CODE_CACHE
// A broken install or build: said in one line, as the program says its own failures.
const readProgram = (): Buffer => {
  try {
    return fs.readFileSync(bundle)
  } catch (error) {
    process.stderr.write(
      `effect-tcp-echo: cannot read the program, ${bundle} (${
        (error as NodeJS.ErrnoException).code ?? String(error)
      }); reinstall the package, or run npm run build\n`
    )
    process.exit(1)
  }
}
// What is read to compile (the bundle's bytes and text, the cache) is let go once compiled: held
// at the module's top level, it would stay in memory (the bundle's size, twice, and the cache's)
// for the server's life.
const compile = (): (...args: ReadonlyArray<unknown>) => void => {
  const source = readProgram()
  const digest = createHash("sha256").update(source).digest()

  const readCache = (): Buffer | "absent" | "made from other source" => {
    let data: Buffer
    try {
      data = fs.readFileSync(cacheFile)
    } catch {
      return "absent"
    }
    return data.subarray(0, digest.length).equals(digest) ? data.subarray(digest.length) : "made from other source"
  }
  const cache = mode === "write" ? "absent" : readCache()

  // Node's CommonJS wrapper, on the bundle's first line so that stack traces keep its line numbers.
  const script = new vm.Script(
    `(function (exports, require, module, __filename, __dirname) {${source.toString("utf8")}\n})`,
    typeof cache === "string" ? { filename: bundle } : { filename: bundle, cachedData: cache }
  )
  if (mode === "report") {
    const verdict = typeof cache === "string" ? cache : script.cachedDataRejected === true ? "rejected by V8" : "used"
    process.stderr.write(`code cache: ${verdict}\n`)
  }
  if (mode === "write") {
    process.once("exit", () => {
      try {
        fs.writeFileSync(cacheFile, Buffer.concat([digest, script.createCachedData()]))
      } catch (error) {
        process.stderr.write(`effect-tcp-echo: cannot write ${cacheFile}: ${String(error)}\n`)
      }
    })
  }
  return script.runInThisContext() as (...args: ReadonlyArray<unknown>) => void
}
const module = { exports: {} }
compile().call(
  module.exports,
  module.exports,
  createRequire(bundle),
  module,
  bundle,
  path.dirname(bundle)
)
