/**
 * The build's last step (`npm run build:bin`): makes the binary's V8 code cache,
 * dist/src/main.cjs.cache (see bin.ts). It runs `serve --port 0` once with
 * `EFFECT_TCP_ECHO_CODE_CACHE=write`, stops it with SIGTERM once it listens, so that the cache
 * holds what a start and a graceful stop compile, then checks that the binary uses it.
 *
 * Where it cannot (no loopback to listen on, say), it says why and leaves no cache: the binary
 * then compiles from source at each start, slower and otherwise the same. Not part of the package.
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..")
const bin = path.join(dir, "bin.js")
const cacheFile = path.join(dir, "main.cjs.cache")

// serve's flags fall back to ECHO_* variables: none of the shell's reaches this run (a metrics
// port, another host), which listens on 127.0.0.1, port 0, and nothing else.
const ownEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("ECHO_")))

const serveOnce = () =>
  new Promise<string | undefined>((resolve) => {
    const child = spawn(process.execPath, [bin, "serve", "--port", "0"], {
      env: { ...ownEnv, EFFECT_TCP_ECHO_CODE_CACHE: "write" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
    child.stdout.on("data", (data: Buffer) => {
      stdout += data.toString()
      if (stdout.includes("listening on")) child.kill("SIGTERM")
    })
    child.stderr.on("data", (data: Buffer) => (stderr += data.toString()))
    child.once("close", (status, signal) => {
      clearTimeout(timer)
      resolve(
        status === 0 && stdout.includes("listening on")
          ? undefined
          : `serve ended with ${signal ?? `status ${status}`}: ${stderr.trim().split("\n").at(-1) ?? ""}`
      )
    })
  })

fs.rmSync(cacheFile, { force: true })
const failed = await serveOnce()
const verdict = failed ?? spawnSync(process.execPath, [bin, "--version"], {
  encoding: "utf8",
  env: { ...ownEnv, EFFECT_TCP_ECHO_CODE_CACHE: "report" },
  timeout: 60_000
}).stderr.trim()
if (verdict !== "code cache: used") {
  fs.rmSync(cacheFile, { force: true })
  process.stderr.write(
    `effect-tcp-echo build: no code cache (${verdict}); the binary compiles from source at each start\n`
  )
}
