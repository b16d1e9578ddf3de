/**
 * The built binary as a user runs it: a subprocess, its output read line by line. `serve` writes
 * one line on stdout (`listening on HOST:PORT`) and its logs on stderr.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process"
import * as path from "node:path"
import * as readline from "node:readline"

/** The built package of the line under test: dist/src (Effect 3), dist/effect4 (Effect 4's config sets it). */
export const dist = path.resolve(import.meta.dirname, "../..", process.env.ECHO_DIST ?? "dist/src")

export const bin = path.join(dist, "bin.js")

/** Runs the binary to completion. */
export const run = (args: ReadonlyArray<string>, env: Record<string, string> = {}, input?: string | Buffer) => {
  const result = spawnSync(process.execPath, [bin, ...args], {
    env: { ...process.env, NO_COLOR: "1", ...env },
    input,
    encoding: "buffer",
    timeout: 30_000
  })
  return {
    status: result.status,
    stdout: result.stdout.toString(),
    stderr: result.stderr.toString(),
    raw: result.stdout
  }
}

/** Runs the binary to completion without blocking this process (for peers served in-process). */
export const runAsync = (
  args: ReadonlyArray<string>,
  env: Record<string, string> = {}
): Promise<{ status: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, NO_COLOR: "1", ...env } })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()))
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
    child.once("close", (status) => {
      clearTimeout(timer)
      resolve({ status, stdout, stderr })
    })
  })

export interface Running {
  readonly child: ChildProcess
  /** Every line of stdout and stderr, in the order they arrived. */
  readonly lines: Array<string>
  readonly stdout: Array<string>
  readonly stderr: Array<string>
  readonly address: { readonly host: string; readonly port: number }
  /** Resolves with the exit code (null when a signal ended it) once the process is gone. */
  readonly exited: Promise<number | null>
  /** Waits for a line of stdout or stderr matching `pattern`. */
  readonly waitFor: (pattern: RegExp) => Promise<string>
}

/**
 * Starts `serve`, resolving once its first stdout line gave the bound address. Kill it when done.
 * `close: true` then closes the read ends of stdout and stderr, as `serve 2>&1 | head -1` does.
 */
export const serve = (
  args: ReadonlyArray<string> = [],
  env: Record<string, string> = {},
  wrapper: ReadonlyArray<string> = [],
  options: { readonly close?: boolean } = {}
): Promise<Running> =>
  new Promise((resolve, reject) => {
    const [command, ...rest] = [...wrapper, process.execPath, bin, "serve", ...args]
    const child = spawn(command!, rest, {
      env: { ...process.env, NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    const lines: Array<string> = []
    const stdout: Array<string> = []
    const stderr: Array<string> = []
    const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = []
    const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)))
    exited.then((code) => reject(new Error(`serve exited (${code}) before listening: ${stderr.join("\n")}`)))
    const onLine = (into: Array<string>) => (line: string) => {
      into.push(line)
      lines.push(line)
      for (const waiter of [...waiters]) {
        if (waiter.pattern.test(line)) {
          waiters.splice(waiters.indexOf(waiter), 1)
          waiter.resolve(line)
        }
      }
    }
    readline.createInterface({ input: child.stderr! }).on("line", onLine(stderr))
    const out = readline.createInterface({ input: child.stdout! })
    out.on("line", onLine(stdout))
    out.once("line", (line) => {
      const match = /^listening on (\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(line)
      if (match === null) return reject(new Error(`first stdout line is not "listening on HOST:PORT": ${line}`))
      if (options.close === true) {
        child.stdout!.destroy()
        child.stderr!.destroy()
      }
      resolve({
        child,
        lines,
        stdout,
        stderr,
        address: { host: match[1]!, port: Number(match[2]) },
        exited,
        waitFor: (pattern) => {
          const seen = lines.find((l) => pattern.test(l))
          return seen !== undefined ? Promise.resolve(seen) : new Promise((r) => waiters.push({ pattern, resolve: r }))
        }
      })
    })
  })

/** Whether util-linux's `prlimit` is here, to start a process under a lower open-files limit. */
export const hasPrlimit = (() => {
  try {
    execFileSync("prlimit", ["--version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()

/**
 * `/readyz` at `base`, asked until it fails (bounded: 200 tries, 10 ms apart): its status then,
 * 200 if it never failed. Right after a signal, the first answers may still come before it.
 */
export const untilNotReady = async (base: string): Promise<number> => {
  let status = 200
  for (let i = 0; i < 200 && status === 200; i++) {
    status = (await fetch(`${base}/readyz`)).status
    if (status === 200) await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return status
}
