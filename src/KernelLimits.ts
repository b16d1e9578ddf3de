/**
 * The kernel's queue and socket limits that decide what a TCP server really gets, read from
 * `/proc` through Effect's `FileSystem` (`@effect/platform`'s on Effect 3), and the pure arithmetic that turns them into
 * the numbers a server reports (effective backlog, SYN-ACK timeout).
 *
 * @since 0.1.0
 */
import { FileSystem } from "#line/platform"
import { Service, service, type ServiceOf } from "#line/types"
import { Data, Effect, Layer } from "effect"
import * as procfs from "./internal/procfs.js"

/**
 * Node's default `listen()` backlog, used when none is requested.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultBacklog = 511

/**
 * A `min default max` triple (`net.ipv4.tcp_rmem`, `net.ipv4.tcp_wmem`).
 *
 * @since 0.1.0
 * @category models
 */
export interface MinDefaultMax {
  readonly min: number
  readonly default: number
  readonly max: number
}

/**
 * A soft/hard resource limit; `Infinity` stands for `unlimited`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SoftHard {
  readonly soft: number
  readonly hard: number
}

/**
 * What was read. Every field is optional: it is absent on a system without `/proc` (not Linux),
 * or when the file cannot be read (a container hiding it, a permission).
 *
 * @since 0.1.0
 * @category models
 */
export interface Limits {
  readonly somaxconn?: number
  readonly tcpMaxSynBacklog?: number
  readonly tcpSyncookies?: number
  readonly tcpSynackRetries?: number
  readonly tcpSynRetries?: number
  readonly rmemDefault?: number
  readonly rmemMax?: number
  readonly wmemDefault?: number
  readonly wmemMax?: number
  readonly tcpRmem?: MinDefaultMax
  readonly tcpWmem?: MinDefaultMax
  readonly ipLocalPortRange?: { readonly low: number; readonly high: number }
  readonly tcpFinTimeout?: number
  readonly tcpKeepaliveTime?: number
  readonly tcpKeepaliveIntvl?: number
  readonly tcpKeepaliveProbes?: number
  readonly openFiles?: SoftHard
}

/**
 * One probed limit: where it lives, how it is set, what it governs.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry<K extends keyof Limits = keyof Limits> {
  readonly key: K
  readonly path: string
  /** How an administrator changes it (`sysctl -w ...`, `ulimit -n`). */
  readonly setting: string
  /** One line on what the limit governs. */
  readonly governs: string
  /** @internal `undefined`: malformed; `null`: the file says nothing about this limit. */
  readonly parse: (text: string) => Limits[K] | null | undefined
}

const int = procfs.parseInteger
const minDefaultMax = (text: string): MinDefaultMax | undefined => {
  const v = procfs.parseIntegers(text, 3)
  return v && { min: v[0]!, default: v[1]!, max: v[2]! }
}

const sysctl = <K extends keyof Limits>(
  key: K,
  name: string,
  governs: string,
  parse: (text: string) => Limits[K] | null | undefined
): Entry<K> => ({
  key,
  path: `/proc/sys/${name.replaceAll(".", "/")}`,
  setting: `sysctl ${name}`,
  governs,
  parse
})

/**
 * Every limit the probe reads, in the order it reports them.
 *
 * @since 0.1.0
 * @category constants
 */
export const entries: ReadonlyArray<Entry> = [
  sysctl("somaxconn", "net.core.somaxconn", "upper bound of every listen() backlog (the accept queue)", int),
  sysctl(
    "tcpSyncookies",
    "net.ipv4.tcp_syncookies",
    "SYN cookies: 1 once a listener's SYN queue holds its backlog, 2 always, 0 never",
    int
  ),
  sysctl(
    "tcpMaxSynBacklog",
    "net.ipv4.tcp_max_syn_backlog",
    "with SYN cookies off only: SYNs from new peers dropped past 3/4 of it",
    int
  ),
  sysctl(
    "tcpSynackRetries",
    "net.ipv4.tcp_synack_retries",
    "SYN-ACK retransmissions before the server gives up on a handshake",
    int
  ),
  sysctl("tcpSynRetries", "net.ipv4.tcp_syn_retries", "SYN retransmissions before a client's connect() fails", int),
  sysctl("rmemDefault", "net.core.rmem_default", "default receive buffer of a socket, in bytes", int),
  sysctl("rmemMax", "net.core.rmem_max", "largest receive buffer SO_RCVBUF may set, in bytes", int),
  sysctl("wmemDefault", "net.core.wmem_default", "default send buffer of a socket, in bytes", int),
  sysctl("wmemMax", "net.core.wmem_max", "largest send buffer SO_SNDBUF may set, in bytes", int),
  sysctl("tcpRmem", "net.ipv4.tcp_rmem", "TCP receive buffer min/default/max (auto-tuned), in bytes", minDefaultMax),
  sysctl("tcpWmem", "net.ipv4.tcp_wmem", "TCP send buffer min/default/max (auto-tuned), in bytes", minDefaultMax),
  sysctl(
    "ipLocalPortRange",
    "net.ipv4.ip_local_port_range",
    "ephemeral ports handed out for port 0 and outgoing connections",
    (text) => {
      const v = procfs.parseIntegers(text, 2)
      return v && { low: v[0]!, high: v[1]! }
    }
  ),
  sysctl("tcpFinTimeout", "net.ipv4.tcp_fin_timeout", "seconds an orphaned connection waits in FIN-WAIT-2", int),
  sysctl("tcpKeepaliveTime", "net.ipv4.tcp_keepalive_time", "idle seconds before the first keepalive probe", int),
  sysctl(
    "tcpKeepaliveIntvl",
    "net.ipv4.tcp_keepalive_intvl",
    "seconds between keepalive probes (Node's sockets: 1, set by libuv)",
    int
  ),
  sysctl(
    "tcpKeepaliveProbes",
    "net.ipv4.tcp_keepalive_probes",
    "unanswered probes before the connection is dropped (Node's sockets: 10, set by libuv)",
    int
  ),
  {
    key: "openFiles",
    path: "/proc/self/limits",
    setting: "ulimit -n (RLIMIT_NOFILE)",
    governs: "descriptors this process may hold: the listener, every connection, every file",
    parse: (text) => procfs.parseLimitsLine(text, "Max open files")
  } satisfies Entry<"openFiles">
]

/**
 * The contents of a limits file could not be parsed: the kernel or a container shim wrote
 * something this probe does not understand.
 *
 * @since 0.1.0
 * @category errors
 */
export class KernelLimitsError extends Data.TaggedError("KernelLimitsError")<{
  readonly reason: "Malformed"
  readonly path: string
  readonly text: string
}> {
  override get message(): string {
    return `${this.path} holds ${JSON.stringify(this.text.trim())}, which is not the expected number(s)`
  }
}

/**
 * The probe as a service, so applications and tests can read limits from a real or a fake
 * file system.
 *
 * @since 0.1.0
 * @category services
 */
export class KernelLimits extends Service<
  KernelLimits,
  { readonly read: Effect.Effect<Limits, KernelLimitsError> }
>()("effect-tcp-echo/KernelLimits") {}

const readEntry = (fs: FileSystem.FileSystem, entry: Entry) =>
  fs.readFileString(entry.path).pipe(
    Effect.matchEffect({
      // Missing (not Linux, no /proc) or unreadable (permission, a container): absent.
      onFailure: (cause) =>
        Effect.logDebug(`kernel limit ${entry.key} unavailable: ${cause.message}`).pipe(Effect.as(undefined)),
      onSuccess: (text) => {
        const value = entry.parse(text)
        return value === undefined
          ? Effect.fail(new KernelLimitsError({ reason: "Malformed", path: entry.path, text }))
          : Effect.succeed(value ?? undefined)
      }
    })
  )

/**
 * Reads every limit in {@link entries} with the given file system, one file at a time: each read
 * holds a descriptor, and a process started under a low open-files limit (32) has too few to
 * spare for all of them at once; a read that failed with `EMFILE` would lose the very limit the
 * server fits itself to.
 *
 * @since 0.1.0
 * @category constructors
 */
export const readWith = (fs: FileSystem.FileSystem): Effect.Effect<Limits, KernelLimitsError> =>
  Effect.forEach(entries, (entry) => readEntry(fs, entry)).pipe(
    Effect.map((values) => {
      const limits: Record<string, unknown> = {}
      entries.forEach((entry, i) => {
        if (values[i] !== undefined) limits[entry.key] = values[i]
      })
      return limits as Limits
    })
  )

/**
 * Builds the service from the `FileSystem` in context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<ServiceOf<typeof KernelLimits>, never, FileSystem.FileSystem> = Effect.map(
  service(FileSystem.FileSystem),
  (fs) => ({ read: readWith(fs) })
)

/**
 * The service, reading through the `FileSystem` in context (`NodeFileSystem.layer` for the real
 * `/proc`, `FileSystem.layerNoop` in tests).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<KernelLimits, never, FileSystem.FileSystem> = Layer.effect(KernelLimits, make)

/**
 * Reads the limits now (they can change at run time through `sysctl`).
 *
 * @since 0.1.0
 * @category accessors
 */
export const read: Effect.Effect<Limits, KernelLimitsError, KernelLimits> = Effect.flatMap(
  service(KernelLimits),
  (limits) => limits.read
)

/**
 * The accept-queue size the kernel will really use for a requested backlog.
 *
 * @since 0.1.0
 * @category models
 */
export interface EffectiveBacklog {
  readonly requested: number
  readonly effective: number
  /** The limit that lowered the request, when one did. */
  readonly clampedBy?: "net.core.somaxconn"
}

/**
 * `min(requested ?? 511, somaxconn)`: Linux silently clamps `listen()`'s backlog to
 * `net.core.somaxconn`. Without a known `somaxconn` the request is taken as is.
 *
 * @since 0.1.0
 * @category utils
 */
export const effectiveBacklog = (requested: number | undefined, limits: Limits): EffectiveBacklog => {
  const wanted = requested ?? defaultBacklog
  return limits.somaxconn !== undefined && limits.somaxconn < wanted
    ? { requested: wanted, effective: limits.somaxconn, clampedBy: "net.core.somaxconn" }
    : { requested: wanted, effective: wanted }
}

/**
 * Worst-case seconds a handshake may take with `retries` retransmissions: the initial timeout is
 * 1 s and doubles at each retry, so `2^(retries+1) - 1` (5 SYN-ACK retries: 63 s).
 *
 * @since 0.1.0
 * @category utils
 */
export const handshakeTimeoutSeconds = (retries: number): number => 2 ** (retries + 1) - 1

/**
 * One sentence for the report: "requested 100000, effective 4096 (net.core.somaxconn)".
 *
 * @since 0.1.0
 * @category utils
 */
export const formatBacklog = (backlog: EffectiveBacklog): string =>
  `requested ${backlog.requested}, effective ${backlog.effective}` +
  (backlog.clampedBy ? ` (${backlog.clampedBy})` : "")

/**
 * What bounds the SYN queue (half-open connections, handshake unfinished) of a listener with
 * this backlog, as one sentence. It is the listener's own backlog (after the `somaxconn`
 * clamp), not `net.ipv4.tcp_max_syn_backlog`: once the queue holds that many, Linux sends SYN
 * cookies (`tcp_syncookies` 1, the default), so the handshake needs no place in it; with cookies
 * off (0) it drops the SYN instead, and also drops SYNs from peers it has not seen before once
 * fewer than a quarter of `tcp_max_syn_backlog` places are left; with 2 it sends cookies always
 * (Linux's `tcp_conn_request()` in net/ipv4/tcp_input.c; measured in docs/kernel-limits.md).
 *
 * @since 0.1.0
 * @category utils
 */
export const synQueue = (backlog: EffectiveBacklog, limits: Limits): string => {
  // Linux 6.18 keeps one more than the backlog (measured: docs/kernel-limits.md).
  const bound = `about ${backlog.effective} half-open connections (the backlog)`
  switch (limits.tcpSyncookies) {
    case undefined:
      return `SYN queue: ${bound}; net.ipv4.tcp_syncookies unknown, so what happens beyond is too`
    case 0:
      return `SYN queue: ${bound}, SYN cookies off (net.ipv4.tcp_syncookies=0): SYNs beyond are dropped, ` +
        `and so are those of new peers once fewer than a quarter of net.ipv4.tcp_max_syn_backlog ` +
        `(${limits.tcpMaxSynBacklog ?? "unknown"}) places are left`
    case 2:
      return "SYN queue: none, SYN cookies for every handshake (net.ipv4.tcp_syncookies=2)"
    default:
      return `SYN queue: ${bound}, then SYN cookies (net.ipv4.tcp_syncookies=${limits.tcpSyncookies}): ` +
        `a SYN flood does not fill it; net.ipv4.tcp_max_syn_backlog applies only with cookies off`
  }
}
