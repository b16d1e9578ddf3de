/**
 * The built binary as a user runs it: a subprocess, its output read line by line.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as path from "node:path"
import * as readline from "node:readline"

export const bin = path.resolve(import.meta.dirname, "../../dist/src/bin.js")

/** Runs the binary to completion. */
export const run = (args: ReadonlyArray<string>, env: Record<string, string> = {}, input?: string | Buffer) => {
  const result = spawnSync(process.execPath, [bin, ...args], {
    env: { ...process.env, NO_COLOR: "1", ...env },
    input,
    encoding: "buffer",
    timeout: 30_000
  })
  return { status: result.status, stdout: result.stdout.toString(), stderr: result.stderr.toString(), raw: result.stdout }
}

/** Runs the binary to completion without blocking this process (for peers served in-process). */
export const runAsync = (args: ReadonlyArray<string>): Promise<{ status: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, NO_COLOR: "1" } })
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
  readonly lines: Array<string>
  readonly address: { readonly host: string; readonly port: number }
  /** Resolves with the exit code once the process is gone. */
  readonly exited: Promise<number | null>
  /** Waits for a stdout line matching `pattern`. */
  readonly waitFor: (pattern: RegExp) => Promise<string>
}

/** Starts `serve`, resolving once its first line gave the bound address. Kill it when done. */
export const serve = (
  args: ReadonlyArray<string> = [],
  env: Record<string, string> = {},
  wrapper: ReadonlyArray<string> = []
): Promise<Running> =>
  new Promise((resolve, reject) => {
    const [command, ...rest] = [...wrapper, process.execPath, bin, "serve", ...args]
    const child = spawn(command!, rest, {
      env: { ...process.env, NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    const lines: Array<string> = []
    const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = []
    const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)))
    let stderr = ""
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()))
    exited.then((code) => reject(new Error(`serve exited (${code}) before listening: ${stderr}`)))
    readline.createInterface({ input: child.stdout! }).on("line", (line) => {
      lines.push(line)
      for (const waiter of [...waiters]) {
        if (waiter.pattern.test(line)) {
          waiters.splice(waiters.indexOf(waiter), 1)
          waiter.resolve(line)
        }
      }
      if (lines.length === 1) {
        const match = /(\d+\.\d+\.\d+\.\d+):(\d+)/.exec(line)
        if (match === null) return reject(new Error(`first line has no HOST:PORT: ${line}`))
        resolve({
          child,
          lines,
          address: { host: match[1]!, port: Number(match[2]) },
          exited,
          waitFor: (pattern) => {
            const seen = lines.find((l) => pattern.test(l))
            return seen !== undefined ? Promise.resolve(seen) : new Promise((r) => waiters.push({ pattern, resolve: r }))
          }
        })
      }
    })
  })
