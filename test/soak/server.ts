/**
 * The server under soak: the real binary, `serve --workers 2 --metrics-port 0`, as an operator
 * runs it. Starts it and reads its addresses (stdout's `listening on` line, and the metrics
 * address from stdout's `metrics on` line or, from a binary that does not print it, from its log),
 * finds its workers in /proc, kills them, stops it with one or two signals, and reads each
 * process's descriptors, RSS and held connections from /proc. Every wait is bounded.
 */
import { Deferred, Duration, Effect } from "effect"
import type { Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as readline from "node:readline"

/** How a server is started: the flags that change between starts. */
export interface Flags {
  readonly proxyProtocol: boolean
  /** `--idle-timeout` in seconds, or none. */
  readonly idleTimeoutSeconds: number | undefined
  readonly shutdownTimeoutSeconds: number
}

/** A running server. */
export interface Server {
  /** The start's number, from 1. */
  readonly id: number
  readonly pid: number
  readonly port: number
  readonly metricsPort: number
  readonly flags: Flags
  readonly startedAt: number
  /** The command line, for the report. */
  readonly argv: ReadonlyArray<string>
  /** Resolves when the primary exits. */
  readonly exit: Deferred.Deferred<Exited>
  /** Whether the soak stopped it (a signal of ours), as opposed to an exit of its own. */
  stopping: boolean
  /** The last lines it logged. */
  readonly tail: () => ReadonlyArray<string>
}

/** How the primary ended. */
export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly at: number
}

/** A server that did not start: its status and last words. */
export class StartError extends Error {
  constructor(readonly reason: string, readonly tail: ReadonlyArray<string>) {
    super(`the server did not start: ${reason}${tail.length === 0 ? "" : `; its last lines:\n${tail.join("\n")}`}`)
  }
}

const tailLines = 40

/** Stdout's lines (the first from any version, the second from a binary that prints it). */
const listeningLine = /^listening on (127\.0\.0\.1):(\d+)$/
const metricsLine = /^metrics on (127\.0\.0\.1):(\d+)$/
/** The log's line, for a binary that puts the metrics address only there. */
const metricsLog = /metrics (?:of all workers )?on http:\/\/(127\.0\.0\.1):(\d+)\/metrics/

/** A program's environment without the server's own variables, so that only the flags apply. */
const cleanEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("ECHO_")))

/**
 * Starts the binary `bin` with `flags`, its log written to `logFile`, and waits, at most
 * `within`, for both its addresses. The scope kills it and its workers if it is still running
 * when the scope closes (the soak interrupted or failed).
 */
export const start = (options: {
  readonly id: number
  readonly bin: string
  readonly flags: Flags
  readonly logFile: string
  readonly within: Duration.DurationInput
}): Effect.Effect<Server, StartError, Scope.Scope> =>
  Effect.gen(function*() {
    const { flags } = options
    const argv = [
      options.bin,
      "serve",
      "--workers",
      "2",
      "--metrics-port",
      "0",
      "--shutdown-timeout",
      `${flags.shutdownTimeoutSeconds}s`,
      ...(flags.idleTimeoutSeconds === undefined ? [] : ["--idle-timeout", `${flags.idleTimeoutSeconds}s`]),
      ...(flags.proxyProtocol ? ["--proxy-protocol"] : [])
    ]
    const exit = yield* Deferred.make<Exited>()
    const addresses = yield* Deferred.make<{ port: number; metricsPort: number }, string>()
    const tail: Array<string> = []
    const log = fs.createWriteStream(options.logFile, { flags: "a" })
    const child: ChildProcess = yield* Effect.acquireRelease(
      Effect.sync(() => spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "pipe"], env: cleanEnv() })),
      (child) =>
        Effect.sync(() => {
          if (child.exitCode === null && child.signalCode === null) killTree(child.pid)
          log.end()
        })
    )
    let port: number | undefined
    let metricsPort: number | undefined
    const settle = () => {
      if (port !== undefined && metricsPort !== undefined) {
        Deferred.unsafeDone(addresses, Effect.succeed({ port, metricsPort }))
      }
    }
    readline.createInterface({ input: child.stdout! }).on("line", (line) => {
      log.write(`stdout: ${line}\n`)
      const listening = listeningLine.exec(line)
      if (listening !== null) port = Number(listening[2])
      const metrics = metricsLine.exec(line)
      if (metrics !== null) metricsPort = Number(metrics[2])
      settle()
    })
    readline.createInterface({ input: child.stderr! }).on("line", (line) => {
      log.write(`${line}\n`)
      tail.push(line)
      if (tail.length > tailLines) tail.shift()
      const metrics = metricsLog.exec(line)
      if (metrics !== null && metricsPort === undefined) metricsPort = Number(metrics[2])
      settle()
    })
    child.on("error", (error) => Deferred.unsafeDone(addresses, Effect.fail(`cannot run node: ${error.message}`)))
    child.on("exit", (code, signal) => {
      Deferred.unsafeDone(exit, Effect.succeed({ code, signal, at: Date.now() }))
      Deferred.unsafeDone(
        addresses,
        Effect.fail(`it exited (${signal === null ? `status ${code}` : signal}) before both addresses were printed`)
      )
    })
    const found = yield* Deferred.await(addresses).pipe(
      Effect.timeoutFail({
        duration: options.within,
        onTimeout: () => `no 'listening on' and metrics address within ${Duration.format(options.within)}`
      }),
      Effect.mapError((reason) => new StartError(reason, [...tail]))
    )
    return {
      id: options.id,
      pid: child.pid!,
      port: found.port,
      metricsPort: found.metricsPort,
      flags,
      startedAt: Date.now(),
      argv: ["node", ...argv],
      exit,
      stopping: false,
      tail: () => [...tail]
    }
  })

/** The children of `pid` (its workers), from every thread's `children` file; none once it is gone. */
export const children = (pid: number): Array<number> => {
  const out = new Set<number>()
  try {
    for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
      const text = fs.readFileSync(`/proc/${pid}/task/${task}/children`, "utf8")
      for (const word of text.split(/\s+/)) if (word !== "") out.add(Number(word))
    }
  } catch {
    // Gone while we looked.
  }
  return [...out]
}

/** Whether `pid` is still a live process of this server's binary (not a zombie, not another program). */
export const alive = (pid: number, bin: string): boolean => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // The state follows the command's name in parentheses, which may itself hold spaces.
    if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) return false
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(bin)
  } catch {
    return false
  }
}

/** SIGKILL to a server's primary and its workers: for the soak's own exit, never for a verdict. */
const killTree = (pid: number | undefined): void => {
  if (pid === undefined) return
  for (const child of children(pid)) signal(child, "SIGKILL")
  signal(pid, "SIGKILL")
}

const signal = (pid: number, name: NodeJS.Signals): boolean => {
  try {
    process.kill(pid, name)
    return true
  } catch {
    return false
  }
}

/** One process, sampled. */
export interface Sample {
  readonly fds: number
  readonly rssBytes: number
  /** TCP connections it holds, listening sockets left out. */
  readonly connections: number
}

/** The socket inodes `pid` holds, and how many descriptors it has. */
const descriptors = (pid: number): { fds: number; sockets: Set<string> } | undefined => {
  let names: Array<string>
  try {
    names = fs.readdirSync(`/proc/${pid}/fd`)
  } catch {
    return undefined
  }
  const sockets = new Set<string>()
  for (const fd of names) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1]
      if (inode !== undefined) sockets.add(inode)
    } catch {
      // Closed while we looked.
    }
  }
  return { fds: names.length, sockets }
}

/** The inodes of every IPv4 TCP socket that is not listening (state 0A), from /proc/net/tcp. */
export const connectedInodes = (): Set<string> => {
  const out = new Set<string>()
  for (const line of fs.readFileSync("/proc/net/tcp", "latin1").split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/)
    if (fields.length > 9 && fields[3] !== "0A" && fields[9] !== "0") out.add(fields[9]!)
  }
  return out
}

/** A process's descriptors, RSS and held connections; `undefined` once it is gone. */
export const sample = (pid: number, connected: Set<string>): Sample | undefined => {
  const held = descriptors(pid)
  if (held === undefined) return undefined
  let rssBytes = 0
  try {
    const kb = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]
    rssBytes = kb === undefined ? 0 : Number(kb) * 1024
  } catch {
    return undefined
  }
  let connections = 0
  for (const inode of held.sockets) if (connected.has(inode)) connections++
  return { fds: held.fds, rssBytes, connections }
}

/** SIGKILL to one worker. Returns its pid, or `undefined` when none was found. */
export const killWorker = (server: Server, pick: (n: number) => number): number | undefined => {
  const workers = children(server.pid)
  if (workers.length === 0) return undefined
  const pid = workers[pick(workers.length)]!
  return signal(pid, "SIGKILL") ? pid : undefined
}

/** How a stop went. */
export interface Stopped {
  readonly exited: Exited
  /** Whether the second SIGTERM was sent (the primary was still running when its moment came). */
  readonly forced: boolean
  /** The primary did not exit within the bound: it was killed. */
  readonly timedOut: boolean
  /** Workers still running `orphanBound` after the primary exited (then killed). */
  readonly orphans: ReadonlyArray<number>
  readonly seconds: number
}

/**
 * SIGTERM to the primary, and when `secondAfter` is given, a second SIGTERM that much later if it
 * still runs (the forced exit). Waits at most `within` for it to exit (then kills it and its
 * workers), and at most `orphanBound` more for every worker it had to be gone.
 */
export const stop = (
  server: Server,
  options: {
    readonly bin: string
    readonly secondAfter: Duration.DurationInput | undefined
    readonly within: Duration.DurationInput
    readonly orphanBound: Duration.DurationInput
  }
): Effect.Effect<Stopped> =>
  Effect.gen(function*() {
    server.stopping = true
    const began = Date.now()
    // Every worker seen until the primary is gone: an orphan is reparented and no longer its child.
    const seen = new Set<number>(children(server.pid))
    const watch = Effect.sync(() => {
      for (const pid of children(server.pid)) seen.add(pid)
    }).pipe(Effect.andThen(Effect.sleep("50 millis")), Effect.forever)
    signal(server.pid, "SIGTERM")
    let forced = false
    const waited = yield* Effect.raceFirst(
      Effect.gen(function*() {
        if (options.secondAfter !== undefined) {
          const early = yield* Deferred.await(server.exit).pipe(Effect.timeout(options.secondAfter), Effect.option)
          if (early._tag === "None") forced = signal(server.pid, "SIGTERM")
        }
        return yield* Deferred.await(server.exit)
      }).pipe(Effect.timeout(options.within), Effect.option),
      watch
    )
    const timedOut = waited._tag === "None"
    if (timedOut) killTree(server.pid)
    const exited = yield* Deferred.await(server.exit)
    const orphanBound = Duration.toMillis(options.orphanBound)
    let orphans = [...seen].filter((pid) => alive(pid, options.bin))
    for (let waitedMs = 0; orphans.length > 0 && waitedMs < orphanBound; waitedMs += 50) {
      yield* Effect.sleep("50 millis")
      orphans = orphans.filter((pid) => alive(pid, options.bin))
    }
    for (const pid of orphans) signal(pid, "SIGKILL")
    return { exited, forced, timedOut, orphans, seconds: (Date.now() - began) / 1000 }
  })

/** The binary's path in a built tree. */
export const binary = (root: string): string => path.join(root, "dist", "src", "bin.js")
