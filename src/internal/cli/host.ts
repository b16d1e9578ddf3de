/**
 * What `serve` learns of its machine before it listens, and says about it once it does: the
 * kernel's limits, the descriptors it holds, the connection limits fitted to them, and who can
 * reach the address it binds.
 */
import { FileSystem } from "#line/platform"
import { decodeDuration } from "#line/types"
import { Duration, Effect } from "effect"
import * as KernelLimits from "../../KernelLimits.js"
import * as Server from "../../Server.js"
import * as Checked from "../checked.js"
import * as Log from "../log.js"
import { formatLimit } from "./probe.js"

/**
 * The machine as read at start.
 *
 * @internal
 */
export interface Host {
  /** The limits, or why they could not be read (reported once `serve` listens). */
  readonly probed: Checked.Checked<KernelLimits.Limits, KernelLimits.KernelLimitsError>
  /**
   * What was read (nothing known when the read failed), but for the open-files limit of a system
   * that has one in /proc and would not give it: {@link assumedOpenFiles} then, and `assumed`.
   */
  readonly limits: KernelLimits.Limits
  /** The open-files limit could not be read where it exists: the connections are fitted to a guess. */
  readonly assumed: boolean
  /** Descriptors the process holds now (0: unknown, without /proc). */
  readonly inUse: number
}

/**
 * The open-files limit assumed when /proc has it and it could not be read: Linux's usual soft
 * limit. Fitted to it, the server drops and counts what it could not hold; fitted to nothing, a
 * lower real limit would make libuv drop connections with no word.
 *
 * @internal
 */
export const assumedOpenFiles = 1024

/**
 * Reads the host, one file after another: under a low open-files limit, reads in parallel would
 * take the descriptors the limits are needed to budget.
 *
 * @internal
 */
export const read: Effect.Effect<Host, never, KernelLimits.KernelLimits | FileSystem.FileSystem> = Effect.gen(
  function*() {
    // Logged after the address, not now: the report comes once the server listens.
    const probed = yield* KernelLimits.read.pipe(
      Effect.match({ onFailure: Checked.invalid, onSuccess: Checked.valid }),
      Log.withMinimumLevel("None")
    )
    const fs = yield* FileSystem.FileSystem
    const inUse = yield* fs.readDirectory("/proc/self/fd").pipe(
      Effect.map((fds) => fds.length),
      Effect.orElseSucceed(() => 0)
    )
    const limits: KernelLimits.Limits = probed._tag === "Valid" ? probed.value : {}
    // Asked of the file's existence: a stat, which takes no descriptor.
    const assumed = limits.openFiles === undefined &&
      (yield* fs.exists(openFilesPath).pipe(Effect.orElseSucceed(() => false)))
    return {
      probed,
      limits: assumed ? { ...limits, openFiles: { soft: assumedOpenFiles, hard: assumedOpenFiles } } : limits,
      assumed,
      inUse
    }
  }
)

const openFilesPath = KernelLimits.entries.find((entry) => entry.key === "openFiles")!.path

/** Descriptors kept free for everything that is not a connection (logs, /proc, the listener). */
const descriptorReserve = 32

/**
 * Fits the connection limits to the open-files limit. Past it, accept() fails with EMFILE and
 * libuv closes the connection without telling anyone; capped here, Node drops the excess itself
 * (its 'drop' event), which the listener logs and counts. The metrics listener's connections
 * (`metricsConnections`, capped on their side) are kept out of the echo server's budget.
 *
 * @internal
 */
export const fitToDescriptors = (
  options: Server.Options,
  limits: KernelLimits.Limits,
  inUse: number,
  metricsConnections = 0
): { readonly options: Server.Options; readonly budget: number | undefined } => {
  const maxConnections = options.maxConnections ?? Server.defaults.maxConnections
  const maxPending = options.maxPending ?? Server.defaults.maxPending
  const soft = limits.openFiles?.soft
  if (soft === undefined || soft === Number.POSITIVE_INFINITY) return { options, budget: undefined }
  const budget = Math.max(1, soft - inUse - descriptorReserve - metricsConnections)
  // Stryker disable next-line EqualityOperator: equivalent (an exact fit, fitted, gives the same numbers)
  if (maxConnections + maxPending <= budget) return { options, budget }
  const connections = Math.min(maxConnections, budget)
  return {
    options: { ...options, maxConnections: connections, maxPending: Math.max(0, budget - connections) },
    budget
  }
}

/**
 * Who can reach a server bound to `host`: undefined for a loopback address, else the warning.
 *
 * @internal
 */
export const exposure = (host: string, address: string): string | undefined =>
  host.startsWith("127.")
    ? undefined
    : host === "0.0.0.0"
    ? `listening on ${address}: every interface of this machine, so any host that can reach it can use ` +
      `this echo server; --host 127.0.0.1 (the default) keeps it to this machine`
    : `listening on ${address}: an address other hosts can reach, so they can use this echo server; ` +
      `--host 127.0.0.1 (the default) keeps it to this machine`

/**
 * Below what starting needs: one line with the limit (when /proc could still be read) and what
 * was open before the listeners, instead of a bare EMFILE.
 *
 * @internal
 */
export const outOfDescriptors = (address: string, host: Host): string => {
  const soft = host.limits.openFiles?.soft
  const held = [
    soft === undefined ? undefined : `the open-files limit is ${soft}`,
    host.inUse > 0 ? `${host.inUse} were open at start` : undefined
  ].filter((part) => part !== undefined)
  return `cannot listen on ${address}: no file descriptor left (EMFILE)${
    held.length > 0 ? `: ${held.join(", ")}` : ""
  }; raise the limit with ulimit -n (each connection needs one more)`
}

/** What libuv sets on a socket with keepalive (`uv_tcp_keepalive`): seconds between probes, and how many. */
const keepAliveInterval = 1
const keepAliveProbes = 10

/**
 * The options with the kernel's keepalive time made explicit: Node's default initial delay of 0
 * makes Linux refuse TCP_KEEPIDLE (EINVAL), which works only by accident (the kernel's value
 * stays).
 *
 * @internal
 */
export const withKeepAliveTime = (options: Server.Options, limits: KernelLimits.Limits): Server.Options =>
  options.keepAlive === true && options.keepAliveInitialDelay === undefined && limits.tcpKeepaliveTime !== undefined
    ? { ...options, keepAliveInitialDelay: Duration.seconds(limits.tcpKeepaliveTime) }
    : options

const total = (options: Server.Options) =>
  (options.maxConnections ?? Server.defaults.maxConnections) + (options.maxPending ?? Server.defaults.maxPending)

/**
 * The report of the limits once `serve` listens: backlog, SYN queue, keepalive, descriptors
 * against the connection limits (`requested`, as the flags asked; `options`, as fitted).
 *
 * @internal
 */
export const report = (host: Host, requested: Server.Options, options: Server.Options): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { limits } = host
    // A malformed file is reported and treated as unknown, not fatal.
    if (host.probed._tag === "Invalid") yield* Effect.logWarning(host.probed.error.message)
    const backlog = KernelLimits.effectiveBacklog(options.backlog, limits)
    yield* Effect.logInfo(`backlog ${KernelLimits.formatBacklog(backlog)}`).pipe(
      Effect.annotateLogs({ backlogRequested: backlog.requested, backlogEffective: backlog.effective })
    )
    yield* Effect.logInfo(KernelLimits.synQueue(backlog, limits))
    if (options.keepAlive === true) {
      const delay = options.keepAliveInitialDelay === undefined
        ? "the kernel's idle time"
        : `${Duration.toSeconds(decodeDuration(options.keepAliveInitialDelay))}s idle` +
          (requested.keepAliveInitialDelay === undefined ? " (net.ipv4.tcp_keepalive_time)" : "")
      // libuv (1.46 to 1.52, Node 20 to 24, seen with strace) sets TCP_KEEPINTVL 1 and TCP_KEEPCNT
      // 10 on every socket it turns keepalive on for: the kernel's own intvl and probes never apply.
      yield* Effect.logInfo(
        `keep-alive on: first probe after ${delay}, then every ${keepAliveInterval}s; a peer that answers ` +
          `none of ${keepAliveProbes} probes is closed (libuv's TCP_KEEPINTVL and TCP_KEEPCNT)`
      )
    }
    if (limits.openFiles === undefined) return
    const wanted = total(requested)
    const held = total(options)
    if (host.assumed) {
      const unknown = `open files limit unknown (${openFilesPath} could not be read), taken to be ${assumedOpenFiles}`
      return yield* Effect.logWarning(
        held < wanted
          ? `${unknown}: at most ${held} of ${wanted} connections (served and waiting) will be held, the rest dropped`
          : `${unknown}: enough for the ${wanted} connections (served and waiting) asked`
      )
    }
    const message = `open files limit ${formatLimit(limits.openFiles.soft)} ` +
      `(hard ${formatLimit(limits.openFiles.hard)}) for ${wanted} connections (served and waiting)`
    yield* held < wanted
      ? Effect.logWarning(
        `${message}: too low, at most ${held} will be held and the rest dropped; ` +
          `raise it with ulimit -n or lower --max-connections`
      )
      : Effect.logInfo(message)
  })
