/**
 * The `effect-tcp-echo` command line: `serve`, `probe` and `client`. Each flag falls back to its
 * `ECHO_*` variable; the flags are data (internal/flags.ts), from which the command line is
 * checked, errors name the flag or variable at fault, and `--help` is written. All behaviour
 * lives in the library modules: this module only parses, reports and maps failures to one line.
 *
 * Output: `serve` writes one line on stdout, `listening on HOST:PORT`, once it accepts; `probe`
 * and `client` write their results there. Logs and errors go to stderr.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
// Deep imports: the packages' index modules load everything in them (all of HttpApi and its
// schemas for @effect/platform), some 25 MB of heap a server never uses.
import * as FileSystem from "@effect/platform/FileSystem"
import {
  Cause,
  Context,
  Data,
  Duration,
  Effect,
  Either,
  Exit,
  FiberRef,
  HashSet,
  Layer,
  Logger,
  LogLevel,
  Option,
  Ref,
  Stream
} from "effect"
import * as os from "node:os"
import * as Client from "./Client.js"
import * as Flags from "./internal/flags.js"
import * as Heap from "./internal/heap.js"
import * as Options_ from "./internal/options.js"
import * as Signals from "./internal/signals.js"
import * as Simulate from "./internal/testkit/launch.js"
import * as KernelLimits from "./KernelLimits.js"
import * as Listener from "./Listener.js"
// A static import: the binary is one bundle, and a dynamic import there would make the bundler
// wrap every module in a lazy initializer, which measured slower to start than loading this one.
import * as Prometheus from "./Prometheus.js"
import * as Server from "./Server.js"
import * as Workers from "./Workers.js"

const program = "effect-tcp-echo"

// --- Failures: one line each, never a stack trace.

/**
 * A failure the command line reports as one line on stderr before exiting non-zero: `Usage`
 * (a flag, a variable, the command line itself: exit status 2, with a hint to `--help`) or
 * `Failed` (the command could not do its work: exit status 1).
 *
 * @since 0.1.0
 * @category errors
 */
export class CliFailure extends Data.TaggedError("CliFailure")<{
  readonly reason: "Usage" | "Failed"
  readonly message: string
  /** The command whose `--help` the hint names. */
  readonly command?: string
}> {
  /** What is printed, every line starting with the program's name or a hint. */
  get text(): string {
    const hint = this.reason === "Usage"
      ? `\nTry '${program}${this.command === undefined ? "" : ` ${this.command}`} --help'.`
      : ""
    return `${program}: ${this.message}${hint}\n`
  }
}

/**
 * A failure of the shutdown that a signal began, once runMain has interrupted the program for
 * that signal: Effect strips failures from the cause of an interrupted fiber as it passes every
 * handler above, so the primary reports it itself and keeps it here, for the exit status.
 */
let failedAfterInterruption: CliFailure | undefined

/**
 * Reports how the command failed, if it did: a failure's text on stderr (in a worker, to the
 * primary instead, which reports it once for the service: `worker 2 could not start: ...`), a
 * defect as the bug it is. An interruption alone (a signal's graceful shutdown) is no failure.
 *
 * @since 0.1.0
 * @category commands
 */
export const reportCause = (cause: Cause.Cause<CliFailure>): Effect.Effect<void> => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    return Workers.isWorker
      ? Workers.reportFailure(failure.value.message)
      : Effect.sync(() => process.stderr.write(failure.value.text))
  }
  const defect = Cause.dieOption(cause)
  if (Option.isNone(defect)) return Effect.void
  const text = defect.value instanceof Error ? defect.value.message : String(defect.value)
  return Effect.sync(() => process.stderr.write(`${program}: unexpected failure (a bug): ${text}\n`))
}

const usage = (message: string, command?: string) =>
  new CliFailure({ reason: "Usage", message, ...(command === undefined ? {} : { command }) })

const failed = (message: string) => new CliFailure({ reason: "Failed", message })

/**
 * The exit status for how the command ended: 0 done (a signal's graceful shutdown included), 1
 * failed, 2 a usage error. A second signal exits at once with 128 + its number (internal/signals.ts).
 *
 * @since 0.1.0
 * @category commands
 */
export const exitCode = (exit: Exit.Exit<unknown, unknown>): number => {
  if (Exit.isSuccess(exit)) return 0
  if (Cause.isInterruptedOnly(exit.cause)) return failedAfterInterruption === undefined ? 0 : 1
  const failure = Cause.failureOption(exit.cause)
  return failure._tag === "Some" && failure.value instanceof CliFailure && failure.value.reason === "Usage" ? 2 : 1
}

// --- Flags.

const maxInt = 2 ** 31 - 1
const logLevels = ["all", "trace", "debug", "info", "warning", "error", "fatal", "none"] as const
const logFormats = ["pretty", "json", "logfmt"] as const

/** The metrics HTTP listener's own cap: a scraper needs one connection. */
const metricsMaxConnections = 16

const port = (min: number) => Flags.integer(min, 65535)
const logLevel = (text: string) => Flags.choice(logLevels)(text.toLowerCase() === "warn" ? "warning" : text)
const durationFlag = (zero: "zero allowed" | "positive") =>
  Flags.duration((value) => Options_.duration("", value, zero))

/** A number of workers, or `auto`: one per core this process may use. */
const workersFlag = (text: string): Either.Either<number, string> =>
  text.toLowerCase() === "auto"
    ? Either.right(Math.max(1, os.availableParallelism()))
    : Either.mapLeft(Flags.integer(1, 1024)(text), (expected) => `${expected}, or auto`)

const serveFlags = {
  host: Flags.value(
    "host",
    "HOST",
    Flags.ipv4,
    "IPv4 address to bind, or localhost. Any address outside 127.0.0.0/8 is reachable from other hosts, and logged as such.",
    {
      variable: "ECHO_HOST",
      default: Listener.defaults.host
    }
  ),
  port: Flags.value("port", "PORT", port(0), "TCP port; 0 asks the kernel for any free one.", {
    variable: "ECHO_PORT",
    default: "0"
  }),
  backlog: Flags.value(
    "backlog",
    "N",
    Flags.integer(1, maxInt),
    "Accept queue requested from listen(); the kernel lowers it to net.core.somaxconn.",
    {
      variable: "ECHO_BACKLOG",
      default: String(Listener.defaults.backlog)
    }
  ),
  maxConnections: Flags.value(
    "max-connections",
    "N",
    Flags.integer(1, maxInt),
    `Connections served at once; beyond, up to ${Server.defaults.maxPending} more wait unread, and the rest are dropped.`,
    {
      variable: "ECHO_MAX_CONNECTIONS",
      default: String(Server.defaults.maxConnections)
    }
  ),
  idleTimeout: Flags.value(
    "idle-timeout",
    "DURATION",
    durationFlag("positive"),
    "Close a connection after this long with nothing moving (500ms, 30s, 5m, 2h).",
    {
      variable: "ECHO_IDLE_TIMEOUT",
      default: "none"
    }
  ),
  shutdownTimeout: Flags.value(
    "shutdown-timeout",
    "DURATION",
    durationFlag("zero allowed"),
    "On SIGINT, SIGTERM or SIGHUP, how long connections may finish before they are cut off.",
    {
      variable: "ECHO_SHUTDOWN_TIMEOUT",
      default: Duration.format(Server.defaults.shutdownTimeout)
    }
  ),
  drainDelay: Flags.value(
    "drain-delay",
    "DURATION",
    durationFlag("zero allowed"),
    "On SIGINT, SIGTERM or SIGHUP, how long the server still accepts while /readyz already answers 503, so that a load balancer stops sending first (Kubernetes' preStop pattern); then the port closes and --shutdown-timeout begins.",
    {
      variable: "ECHO_DRAIN_DELAY",
      default: "0s"
    }
  ),
  proxyProtocol: Flags.switch_(
    "proxy-protocol",
    "Every connection starts with a PROXY protocol header (v1 or v2, as HAProxy's send-proxy-v2 sends), from a --trusted-proxies source: the client it names is the peer in the logs. A connection without a valid header in time, or from another source, is refused, logged and counted.",
    "ECHO_PROXY_PROTOCOL"
  ),
  trustedProxies: Flags.value(
    "trusted-proxies",
    "CIDRS",
    Flags.networks,
    "With --proxy-protocol: the sources allowed to send a header, as comma-separated IPv4 networks or addresses (10.0.0.0/8,192.0.2.7).",
    {
      variable: "ECHO_TRUSTED_PROXIES",
      default: Server.defaults.trustedProxies.join(",")
    }
  ),
  proxyHeaderTimeout: Flags.value(
    "proxy-header-timeout",
    "DURATION",
    durationFlag("positive"),
    "With --proxy-protocol: how long a connection's header may take to arrive whole before the connection is refused.",
    {
      variable: "ECHO_PROXY_HEADER_TIMEOUT",
      default: Duration.format(Server.defaults.headerTimeout)
    }
  ),
  workers: Flags.value(
    "workers",
    "N|auto",
    workersFlag,
    "Worker processes serving the port (node:cluster; on Node 22.12 and later each binds it with reusePort), auto for one per available core. Past 1, a primary runs them: it prints the address, serves the metrics and probes for all, restarts a worker that dies (and gives up on a crash loop), and shuts them all down on a signal.",
    {
      variable: "ECHO_WORKERS",
      default: "1"
    }
  ),
  noDelay: Flags.switch_("no-delay", "Set TCP_NODELAY: no Nagle delay for small writes.", "ECHO_NO_DELAY"),
  keepAlive: Flags.switch_(
    "keep-alive",
    "Set SO_KEEPALIVE: probe connections that stay idle, and close those whose peer is gone.",
    "ECHO_KEEP_ALIVE"
  ),
  keepAliveDelay: Flags.value(
    "keep-alive-delay",
    "DURATION",
    Flags.duration((value) => Options_.keepAliveDelay("", value)),
    "Idle time before the first keepalive probe, in whole seconds (1s to 32767s); implies --keep-alive. Probes then follow every second, 10 of them (libuv sets TCP_KEEPINTVL 1 and TCP_KEEPCNT 10 on the socket, whatever net.ipv4.tcp_keepalive_intvl and _probes say).",
    {
      variable: "ECHO_KEEP_ALIVE_DELAY",
      default: "the kernel's net.ipv4.tcp_keepalive_time (7200s unless changed)"
    }
  ),
  logLevel: Flags.value(
    "log-level",
    "LEVEL",
    logLevel,
    `Least severe level logged: ${logLevels.join(", ")} (any case; warn for warning).`,
    {
      variable: "ECHO_LOG_LEVEL",
      default: "info",
      withheld: true
    }
  ),
  logFormat: Flags.value(
    "log-format",
    "FORMAT",
    Flags.choice(logFormats),
    "Log records as pretty text, JSON lines or logfmt lines, on stderr.",
    {
      variable: "ECHO_LOG_FORMAT",
      default: "pretty"
    }
  ),
  metricsPort: Flags.value(
    "metrics-port",
    "PORT",
    port(0),
    `Serve Prometheus metrics on http://127.0.0.1:PORT/metrics, and the probes /healthz (alive) and /readyz (accepting) (0: any free port), at most ${metricsMaxConnections} connections at once.`,
    {
      variable: "ECHO_METRICS_PORT",
      default: "off"
    }
  ),
  metricsHost: Flags.value(
    "metrics-host",
    "HOST",
    Flags.ipv4,
    "With --metrics-port: the IPv4 address it binds, such as a pod's 0.0.0.0 for the kubelet's HTTP probes and a scraper. Outside 127.0.0.0/8, anyone who reaches it reads the metrics; logged as such.",
    {
      variable: "ECHO_METRICS_HOST",
      default: Prometheus.defaults.host
    }
  ),
  inspectOnSigusr1: Flags.switch_(
    "inspect-on-sigusr1",
    "Let SIGUSR1 open Node's inspector on 127.0.0.1:9229, as Node does by default. Off, SIGUSR1 is logged and ignored: the inspector runs any code as this process's user for whoever can connect to it.",
    "ECHO_INSPECT_ON_SIGUSR1"
  )
}

const probeFlags = {
  json: Flags.switch_("json", "Print one JSON object instead of a table."),
  backlog: Flags.value(
    "backlog",
    "N",
    Flags.integer(1, maxInt),
    "Compute the accept queue the kernel would give this backlog.",
    {
      variable: "ECHO_BACKLOG",
      default: String(KernelLimits.defaultBacklog)
    }
  )
}

const clientFlags = {
  host: Flags.value("host", "HOST", Flags.ipv4, "Server address: IPv4, or localhost.", {
    variable: "ECHO_HOST",
    default: "127.0.0.1"
  }),
  port: Flags.value("port", "PORT", port(1), "Server port (required).", { variable: "ECHO_PORT" }),
  timeout: Flags.value(
    "timeout",
    "DURATION",
    durationFlag("positive"),
    "Give up when the whole exchange takes longer.",
    {
      variable: "ECHO_TIMEOUT",
      default: "10s"
    }
  ),
  message: Flags.value("message", "TEXT", Flags.text, "Send this text instead of stdin.")
}

const serveSpec: Flags.Command = {
  name: "serve",
  summary: "Run the echo server until SIGINT, SIGTERM or SIGHUP.",
  usage: "serve [FLAGS]",
  description: [
    "Run the echo server until SIGINT, SIGTERM or SIGHUP, then shut down gracefully: the port closes at once, and open connections get --shutdown-timeout to finish.",
    "Stdout gets one line, 'listening on HOST:PORT', once the server accepts. Logs go to stderr. A closed stdout or stderr (serve | head -1) never stops the server: what cannot be written is dropped.",
    "Each flag falls back to its variable; a flag wins over its variable."
  ],
  flags: serveFlags,
  sections: [{
    title: "Exit status",
    lines: [
      "  0      shut down gracefully, after SIGINT, SIGTERM or SIGHUP",
      "  1      could not serve (the port is taken, ...); with --workers, also a",
      "         crash loop, or a worker still running at the shutdown's deadline",
      "  2      a usage error: a flag, a variable, the command line",
      "  128+N  a second signal N during the shutdown stopped it at once:",
      "         130 SIGINT, 143 SIGTERM, 129 SIGHUP"
    ]
  }]
}

const probeSpec: Flags.Command = {
  name: "probe",
  summary: "Print the kernel limits that govern a TCP server.",
  usage: "probe [FLAGS]",
  description: ["Print the kernel limits that govern a TCP server, how to change each, and what the backlog would be."],
  flags: probeFlags
}

const clientSpec: Flags.Command = {
  name: "client",
  summary: "Send stdin to an echo server; exit 0 only if the echo matches.",
  usage: "client --port PORT [FLAGS]",
  description: [
    "Send stdin (or --message) to an echo server, half-close, and print the echo on stdout. Exit 0 only if the echo is exactly what was sent, 1 otherwise."
  ],
  flags: clientFlags
}

const specs = [serveSpec, probeSpec, clientSpec]

/** @effect/cli's options for a flag table: text or a switch, checked later by the table. */
const cliOptions = <T extends Readonly<Record<string, Flags.Flag<any>>>>(flags: T) => {
  const options: Record<string, Options.Options<Option.Option<string> | boolean>> = {}
  for (const [key, flag] of Object.entries(flags)) {
    if (flag.withheld === true) continue
    options[key] = flag.placeholder === undefined
      ? Options.boolean(flag.name).pipe(Options.withDescription(flag.description))
      : Options.text(flag.name).pipe(Options.optional, Options.withDescription(flag.description))
  }
  // One option per key of `flags` (but the withheld ones), each of the kind its flag takes.
  return options as { readonly [K in keyof T]: Options.Options<Option.Option<string> | boolean> }
}

/** The command line as checked before @effect/cli saw it: where the withheld flags are read. */
class Given extends Context.Tag("effect-tcp-echo/Cli/Given")<Given, ReadonlyMap<string, string | true>>() {}

/** The checked values of a command's flags, or a usage error naming the flag or variable. */
const resolve = <T extends Readonly<Record<string, Flags.Flag<any>>>>(
  spec: Flags.Command,
  flags: T,
  parsed: { readonly [K in keyof T]: Option.Option<string> | boolean }
) =>
  Effect.flatMap(Effect.serviceOption(Given), (checked) =>
    Flags.resolve(flags, (key) => {
      if (flags[key]!.withheld === true) {
        const text = Option.flatMap(checked, (given) => Option.fromNullable(given.get(flags[key]!.name)))
        return Option.filter(text, (t): t is string => typeof t === "string")
      }
      const given: Option.Option<string> | boolean = parsed[key]
      return given === true ? Option.some("true") : given === false ? Option.none() : given
    })).pipe(Effect.mapError((invalid) => usage(Flags.formatInvalid(invalid), spec.name)))

// --- Logging: to stderr, in the format asked for.

/**
 * The logger for a log format, writing to stderr, and the minimum level: one layer.
 *
 * @since 0.1.0
 * @category logging
 */
export const loggingLayer = (format: (typeof logFormats)[number], level: LogLevel.LogLevel) => {
  const logger = format === "json"
    ? Logger.withConsoleError(Logger.jsonLogger)
    : format === "logfmt"
    ? Logger.withConsoleError(Logger.logfmtLogger)
    : Logger.prettyLogger({ stderr: true, colors: process.stderr.isTTY === true && process.env.NO_COLOR === undefined })
  ours.add(logger)
  return Layer.merge(
    // In place of Effect's default logger and of any logger set here before: one record, one line.
    Layer.scopedDiscard(
      Effect.locallyScopedWith(FiberRef.currentLoggers, (loggers) =>
        HashSet.add(
          HashSet.filter(loggers, (l) => l !== Logger.defaultLogger && !ours.has(l)),
          logger
        ))
    ),
    Logger.minimumLogLevel(level)
  )
}

const ours = new WeakSet<Logger.Logger<unknown, unknown>>()

const capitalize = <S extends string>(s: S) => (s.charAt(0).toUpperCase() + s.slice(1)) as Capitalize<S>

// --- serve.

const formatLimit = (value: unknown): string =>
  typeof value === "number"
    ? (value === Number.POSITIVE_INFINITY ? "unlimited" : String(value))
    : typeof value === "object" && value !== null
    ? Object.entries(value).map(([k, v]) => `${k}=${formatLimit(v)}`).join(" ")
    : "unavailable"

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
  if (soft === undefined || !Number.isFinite(soft)) return { options, budget: undefined }
  const budget = Math.max(1, soft - inUse - descriptorReserve - metricsConnections)
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

/** What libuv sets on a socket with keepalive (`uv_tcp_keepalive`): seconds between probes, and how many. */
const keepAliveInterval = 1
const keepAliveProbes = 10

/** Startup report: backlog, SYN queue, keepalive, descriptors against the connection limits. */
const report = (requested: Server.Options, options: Server.Options, limits: KernelLimits.Limits) =>
  Effect.gen(function*() {
    const backlog = KernelLimits.effectiveBacklog(options.backlog, limits)
    yield* Effect.logInfo(`backlog ${KernelLimits.formatBacklog(backlog)}`).pipe(
      Effect.annotateLogs({ backlogRequested: backlog.requested, backlogEffective: backlog.effective })
    )
    yield* Effect.logInfo(KernelLimits.synQueue(backlog, limits))
    if (options.keepAlive === true) {
      const delay = options.keepAliveInitialDelay === undefined
        ? "the kernel's idle time"
        : `${Duration.toSeconds(options.keepAliveInitialDelay)}s idle` +
          (requested.keepAliveInitialDelay === undefined ? " (net.ipv4.tcp_keepalive_time)" : "")
      // libuv (1.46 to 1.52, Node 20 to 24, seen with strace) sets TCP_KEEPINTVL 1 and TCP_KEEPCNT
      // 10 on every socket it turns keepalive on for: the kernel's own intvl and probes never apply.
      yield* Effect.logInfo(
        `keep-alive on: first probe after ${delay}, then every ${keepAliveInterval}s; a peer that answers ` +
          `none of ${keepAliveProbes} probes is closed (libuv's TCP_KEEPINTVL and TCP_KEEPCNT)`
      )
    }
    if (limits.openFiles !== undefined) {
      const wanted = (requested.maxConnections ?? Server.defaults.maxConnections) +
        (requested.maxPending ?? Server.defaults.maxPending)
      const held = (options.maxConnections ?? Server.defaults.maxConnections) +
        (options.maxPending ?? Server.defaults.maxPending)
      const message = `open files limit ${formatLimit(limits.openFiles.soft)} ` +
        `(hard ${formatLimit(limits.openFiles.hard)}) for ${wanted} connections (served and waiting)`
      yield* held < wanted
        ? Effect.logWarning(
          `${message}: too low, at most ${held} will be held and the rest dropped; ` +
            `raise it with ulimit -n or lower --max-connections`
        )
        : Effect.logInfo(message)
    }
  })

/** Descriptors the process holds now (none known without /proc). */
const descriptorsInUse = Effect.flatMap(
  FileSystem.FileSystem,
  (fs) => fs.readDirectory("/proc/self/fd").pipe(Effect.map((fds) => fds.length), Effect.orElseSucceed(() => 0))
)

/** `GET /metrics`, `/healthz` and `/readyz` on the metrics port, in the current scope; its exposure logged. */
const serveMetrics = (
  flags: Values<typeof serveFlags>,
  sources: Flags.Sources<typeof serveFlags>,
  ready: Effect.Effect<boolean>,
  exhausted: (address: string) => string,
  exposition?: Effect.Effect<string>
) =>
  Effect.gen(function*() {
    const host = Option.getOrElse(flags.metricsHost, () => Prometheus.defaults.host)
    const bound = yield* Prometheus.serve({
      host,
      port: Option.getOrElse(flags.metricsPort, () => 0),
      maxConnections: metricsMaxConnections,
      ready,
      ...(exposition === undefined ? {} : { exposition })
    }).pipe(
      Effect.mapError((error) => {
        const from = [sources.metricsHost, sources.metricsPort].filter((s) => s !== undefined)
        return failed(
          `cannot serve metrics: ${error.code === "EMFILE" ? exhausted(error.address) : error.message}` +
            (from.length === 0
              ? ""
              : ` (${from.length === 1 && sources.metricsPort !== undefined ? "port" : "address"} from ${
                from.join(" and ")
              })`)
        )
      })
    )
    if (!bound.host.startsWith("127.")) {
      yield* Effect.logWarning(
        `metrics on ${
          Listener.formatAddress(bound)
        }: reachable from other hosts, which can read every metric and probe; ` +
          `--metrics-host 127.0.0.1 (the default) keeps them to this machine`
      )
    }
    return bound
  })

type Values<T> = Flags.Values<T>

/** What the flags cannot say together, refused before anything starts. */
const checkServeFlags = (flags: Values<typeof serveFlags>, sources: Flags.Sources<typeof serveFlags>) =>
  Effect.gen(function*() {
    const port = Option.getOrUndefined(flags.port)
    const metricsPort = Option.getOrUndefined(flags.metricsPort)
    if (metricsPort !== undefined && metricsPort !== 0 && metricsPort === port) {
      return yield* usage(
        `${sources.metricsPort} ${metricsPort} is also the echo port (${sources.port}): give each its own`,
        "serve"
      )
    }
    if (metricsPort === undefined && sources.metricsHost !== undefined) {
      return yield* usage(
        `${sources.metricsHost} takes effect only with --metrics-port (or ECHO_METRICS_PORT): give it too, or drop it`,
        "serve"
      )
    }
    // Settings of the PROXY protocol without it would be silently ignored: refused instead.
    if (!Option.getOrElse(flags.proxyProtocol, () => false)) {
      const without = [sources.trustedProxies, sources.proxyHeaderTimeout].filter((s) => s !== undefined)
      if (without.length > 0) {
        return yield* usage(
          `${without.join(" and ")} take${
            without.length === 1 ? "s" : ""
          } effect only with --proxy-protocol (or ECHO_PROXY_PROTOCOL): give it too, or drop ${
            without.length === 1 ? "it" : "them"
          }`,
          "serve"
        )
      }
    }
  })

/**
 * One server in this process: alone, or as worker `worker` of a primary (which then prints the
 * address, serves the metrics and decides the shutdown).
 */
const serveWith = (
  flags: Values<typeof serveFlags>,
  sources: Flags.Sources<typeof serveFlags>,
  worker?: { readonly id: number; readonly restarts: number }
) =>
  Effect.gen(function*() {
    // First, so that it covers everything below: a first signal starts the graceful shutdown, a
    // second ends the process at once. Released last, once the shutdown is over. A worker has it
    // too: a terminal's Ctrl-C reaches every process of the group.
    const signals = yield* Signals.guard({ inspector: Option.getOrElse(flags.inspectOnSigusr1, () => false) })
    yield* checkServeFlags(flags, sources)
    // A worker's metrics are served by its primary.
    const metricsPort = worker === undefined ? Option.getOrUndefined(flags.metricsPort) : undefined
    // Of the first worker's first start only, the report of the limits: the same for all.
    const reporting = worker === undefined || (worker.id === 1 && worker.restarts === 0)
    // Read before listening (the limits shape the server), logged after: the address comes first.
    const probed = yield* Effect.either(KernelLimits.read).pipe(Logger.withMinimumLogLevel(LogLevel.None))
    const limits = probed._tag === "Right" ? probed.right : {}
    const requested = serverOptions(flags)
    const keepAlive = requested.keepAlive === true && requested.keepAliveInitialDelay === undefined &&
        limits.tcpKeepaliveTime !== undefined
      // Passed as it is: Node's default of 0 makes Linux refuse TCP_KEEPIDLE (EINVAL), which works
      // only by accident (the kernel's value stays).
      ? { ...requested, keepAliveInitialDelay: Duration.seconds(limits.tcpKeepaliveTime) }
      : requested
    const inUse = yield* descriptorsInUse
    const fitted = fitToDescriptors(
      keepAlive,
      limits,
      inUse,
      metricsPort === undefined ? 0 : metricsMaxConnections
    ).options
    // The port and its sharing, as the primary decided them.
    const options = worker === undefined ? fitted : Workers.workerOptions(fitted)
    // glibc would otherwise unmap and fault in its heap top at every GC under load (heap.ts).
    yield* Effect.sync(Heap.relaxTrim)
    // Metrics first: a port that cannot be served fails before the server is announced, and the
    // scope releases it last, so that the echo server's drain can be watched to its end.
    // Ready once the server accepts, until the first signal: from that moment, before the drain
    // delay ends, /readyz says no, so that a load balancer stops sending while the port is open.
    const serverReady = yield* Ref.make<Effect.Effect<boolean>>(Effect.succeed(false))
    const ready = Effect.flatMap(signals.received, (received) =>
      received ? Effect.succeed(false) : Effect.flatten(Ref.get(serverReady)))
    const metrics = metricsPort === undefined
      ? undefined
      : yield* serveMetrics(flags, sources, ready, (address) =>
        outOfDescriptors(address, limits, inUse))
    const server = yield* Server.make(options).pipe(
      Effect.catchTags({
        ListenError: (error) => Effect.fail(listenFailure(error, sources, limits, inUse)),
        ServerError: (error) => Effect.fail(failed(`${error.message}${setBy(sources, error.option)}`))
      })
    )
    yield* Ref.set(serverReady, server.ready)
    const address = Listener.formatAddress(server.address)
    // What `serve` gives its caller, alone on stdout. A reader gone (EPIPE) is ignored by the binary.
    // A worker's primary writes it, once for all.
    if (worker === undefined) yield* Effect.sync(() => process.stdout.write(`listening on ${address}\n`))
    yield* Effect.logInfo(`listening on ${address}`).pipe(Effect.annotateLogs("address", address))
    if (reporting) yield* startReport(flags, server.address.host, address, probed, requested, options, limits)
    if (metrics !== undefined) {
      const url = `http://${Listener.formatAddress(metrics)}/metrics`
      yield* Effect.logInfo(`metrics on ${url}, probes on /healthz and /readyz`).pipe(
        Effect.annotateLogs("metrics", url)
      )
    }
    if (worker === undefined) return yield* signals.stopped
    // Until the primary asks (or is gone), or a signal reaches this worker itself.
    const asked = yield* Workers.attach(server)
    yield* Effect.raceFirst(signals.stopped, asked)
  }).pipe(
    Effect.scoped,
    // The scope's release was the graceful shutdown (the runtime interrupts this fiber on SIGINT
    // and SIGTERM, as the signal guard asks for it): said last, unless serving failed.
    Effect.onExit((exit) =>
      Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)
        ? Effect.logInfo("stopped: the port is closed, and no connection is left open")
        : Effect.void
    )
  )

/** What `serve` logs once it listens: exposure, inspector, limits, the PROXY protocol. */
const startReport = (
  flags: Values<typeof serveFlags>,
  host: string,
  address: string,
  probed: Either.Either<KernelLimits.Limits, KernelLimits.KernelLimitsError>,
  requested: Server.Options,
  options: Server.Options,
  limits: KernelLimits.Limits
) =>
  Effect.gen(function*() {
    const exposed = exposure(host, address)
    if (exposed !== undefined) yield* Effect.logWarning(exposed)
    if (Option.getOrElse(flags.inspectOnSigusr1, () => false)) {
      yield* Effect.logWarning(
        "SIGUSR1 opens Node's inspector on 127.0.0.1:9229 (--inspect-on-sigusr1): any local user who " +
          "can signal this process or reach that port can then run code as its user"
      )
    }
    // A malformed file is reported and treated as unknown, not fatal.
    if (probed._tag === "Left") yield* Effect.logWarning(probed.left.message)
    yield* report(requested, options, limits)
    if (options.proxyProtocol !== undefined) {
      const trusted = options.proxyProtocol.trustedProxies ?? Server.defaults.trustedProxies
      const timeout = Duration.format(options.proxyProtocol.headerTimeout ?? Server.defaults.headerTimeout)
      yield* Effect.logInfo(
        `PROXY protocol on: a header (v1 or v2) from ${
          trusted.join(", ")
        } within ${timeout}, or the connection is refused`
      )
    }
  })

/** The library's options from the flags: only what was given, so defaults stay in one place. */
const serverOptions = (flags: Values<typeof serveFlags>): Server.Options => {
  const options: Record<string, unknown> = {}
  for (
    const key of [
      "host",
      "port",
      "backlog",
      "maxConnections",
      "idleTimeout",
      "shutdownTimeout",
      "drainDelay",
      "noDelay",
      "keepAlive"
    ] as const
  ) {
    const value: Option.Option<unknown> = flags[key]
    if (Option.isSome(value)) options[key] = value.value
  }
  if (Option.isSome(flags.keepAliveDelay)) {
    options.keepAlive = true
    options.keepAliveInitialDelay = flags.keepAliveDelay.value
  }
  if (Option.getOrElse(flags.proxyProtocol, () => false)) {
    options.proxyProtocol = {
      ...(Option.isSome(flags.trustedProxies) ? { trustedProxies: flags.trustedProxies.value } : {}),
      ...(Option.isSome(flags.proxyHeaderTimeout) ? { headerTimeout: flags.proxyHeaderTimeout.value } : {})
    }
  }
  // Each key above is an option of the same name and type.
  return options as Server.Options
}

/** ` (port from ECHO_PORT)`: where the option at fault was set, when the command line set it. */
const setBy = (sources: Flags.Sources<typeof serveFlags>, option: string | undefined): string => {
  const source = option === undefined ? undefined : (sources as Record<string, string | undefined>)[option]
  return source === undefined ? "" : ` (${option} from ${source})`
}

/**
 * Below what starting needs: one line with the limit (when /proc could still be read) and what
 * was open before the listeners, instead of a bare EMFILE.
 */
const outOfDescriptors = (address: string, limits: KernelLimits.Limits, inUse: number) => {
  const soft = limits.openFiles?.soft
  const held = [
    soft === undefined ? undefined : `the open-files limit is ${soft}`,
    inUse > 0 ? `${inUse} were open at start` : undefined
  ].filter((part) => part !== undefined)
  return `cannot listen on ${address}: no file descriptor left (EMFILE)${
    held.length > 0 ? `: ${held.join(", ")}` : ""
  }; ` +
    `raise the limit with ulimit -n (each connection needs one more)`
}

const listenFailure = (
  error: Listener.ListenError,
  sources: Flags.Sources<typeof serveFlags>,
  limits: KernelLimits.Limits,
  inUse: number
) => {
  if (error.reason === "InvalidOption") return failed(`${error.message}${setBy(sources, error.option)}`)
  if (error.code === "EMFILE") return failed(outOfDescriptors(error.address, limits, inUse))
  const from = [sources.host, sources.port].filter((s) => s !== undefined)
  return failed(error.message + (from.length === 0 ? "" : ` (address from ${from.join(" and ")})`))
}

const serve = Command.make("serve", cliOptions(serveFlags), (parsed) =>
  Effect.gen(function*() {
    const { sources, values } = yield* resolve(serveSpec, serveFlags, parsed)
    const level = LogLevel.fromLiteral(capitalize(Option.getOrElse(values.logLevel, () => "info" as const)))
    const format = Option.getOrElse(values.logFormat, () => "pretty" as const)
    const workers = Option.getOrElse(values.workers, () => 1)
    const run = Option.match(Workers.current, {
      onSome: ({ id, restarts }) =>
        // Every record of a worker says which; once done, its channel to the primary lets go.
        serveWith(values, sources, { id, restarts }).pipe(
          Effect.annotateLogs("worker", id),
          Effect.ensuring(Workers.detach)
        ),
      onNone: () => workers > 1 ? servePrimary(values, sources, workers) : serveWith(values, sources)
    })
    return yield* run.pipe(Effect.provide(loggingLayer(format, level)))
  })).pipe(Command.withDescription(serveSpec.summary))

/** A worker's own cleanup after the server's: the most the primary waits for, beyond its flags. */
const workerMargin = Duration.seconds(2)

/**
 * `serve --workers N`, N > 1: the primary. Its workers run this same binary with the same
 * command line; it prints the one address, serves the metrics and probes of the whole service,
 * and turns the first signal into one shutdown of all, under one deadline, with one status.
 */
const servePrimary = (
  flags: Values<typeof serveFlags>,
  sources: Flags.Sources<typeof serveFlags>,
  count: number
) =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const signals = yield* Signals.guard({ inspector: Option.getOrElse(flags.inspectOnSigusr1, () => false) })
      yield* checkServeFlags(flags, sources)
      const requested = serverOptions(flags)
      const drainDelay = Duration.decode(requested.drainDelay ?? Server.defaults.drainDelay)
      const shutdownTimeout = Duration.decode(requested.shutdownTimeout ?? Server.defaults.shutdownTimeout)
      // Each worker drains under its own flags; the primary waits that long, and a margin more.
      const deadline = Duration.sum(
        Duration.sum(drainDelay, shutdownTimeout),
        Duration.sum(Server.defaults.cleanupTimeout, workerMargin)
      )
      const running = yield* Ref.make(Option.none<Workers.Workers>())
      const ready = Effect.flatMap(signals.received, (received) =>
        received
          ? Effect.succeed(false)
          : Effect.flatMap(
            Ref.get(running),
            Option.match({ onNone: () => Effect.succeed(false), onSome: (w) => w.ready })
          ))
      const exposition = Effect.flatMap(
        Ref.get(running),
        Option.match({ onNone: () => Prometheus.exposition, onSome: (w) => w.exposition })
      )
      const metricsPort = Option.getOrUndefined(flags.metricsPort)
      const metrics = metricsPort === undefined
        ? undefined
        : yield* restore(
          serveMetrics(
            flags,
            sources,
            ready,
            (address) => `cannot listen on ${address}: no file descriptor left (EMFILE)`,
            exposition
          )
        )
      const sharing = Listener.reusePortSupported ? "reusePort" : "cluster"
      yield* Effect.logInfo(
        sharing === "reusePort"
          ? `${count} workers, each listening on the port itself (reusePort, Node ${process.versions.node}): the kernel spreads connections`
          : `${count} workers sharing the primary's listening socket (node:cluster, Node ${process.versions.node}, no reusePort before 22.12): ` +
            "each worker accepts from it itself, and the primary holds no connection"
      )
      const workers = yield* restore(Workers.make({
        workers: count,
        port: Option.getOrElse(flags.port, () => 0),
        sharing,
        shutdownTimeout: deadline
      })).pipe(Effect.mapError((error) => failed(error.message)))
      yield* Ref.set(running, Option.some(workers))
      const address = Listener.formatAddress(workers.address)
      yield* Effect.sync(() => process.stdout.write(`listening on ${address}\n`))
      const pids = (yield* workers.workers).map((w) => `${w.id} (pid ${w.pid})`).join(", ")
      yield* Effect.logInfo(`listening on ${address} with workers ${pids}`).pipe(
        Effect.annotateLogs("address", address)
      )
      if (metrics !== undefined) {
        const url = `http://${Listener.formatAddress(metrics)}/metrics`
        yield* Effect.logInfo(`metrics of all workers on ${url}, probes on /healthz and /readyz`).pipe(
          Effect.annotateLogs("metrics", url)
        )
      }
      // Until the first signal (or the interruption runMain makes of it), or a crash loop.
      let interrupted = false
      const ended = yield* Effect.either(
        restore(Effect.raceFirst(signals.stopped, workers.failed)).pipe(
          Effect.catchAllCause((cause) =>
            Cause.isInterruptedOnly(cause)
              ? Effect.sync(() => {
                interrupted = true
              })
              : Effect.failCause(cause)
          )
        )
      )
      if (Either.isRight(ended)) {
        yield* Effect.logInfo(`shutting down ${count} workers: each drains, all within ${Duration.format(deadline)}`)
      }
      const summary = yield* workers.shutdown
      const statuses = summary.exits.map((e) =>
        `worker ${e.id} ${e.signal === null ? `exited ${e.code}` : `ended by ${e.signal}`}`
      ).join(", ")
      yield* Effect.logInfo(`workers stopped: ${statuses}`)
      const failure = Either.isLeft(ended)
        ? failed(ended.left.message)
        : summary.clean
        ? undefined
        : failed(
          summary.killed.length > 0
            ? `shutdown: worker${summary.killed.length > 1 ? "s" : ""} ${summary.killed.join(", ")} still running ${
              Duration.format(deadline)
            } after the signal, killed`
            : `shutdown: not every worker exited cleanly (${statuses})`
        )
      if (failure === undefined) return
      if (interrupted) {
        yield* Effect.sync(() => {
          failedAfterInterruption = failure
          process.stderr.write(failure.text)
        })
      }
      return yield* failure
    }).pipe(Effect.scoped)
  )

// --- probe.

const probe = Command.make("probe", cliOptions(probeFlags), (parsed) =>
  Effect.gen(function*() {
    const { values } = yield* resolve(probeSpec, probeFlags, parsed)
    const limits = yield* KernelLimits.read.pipe(Effect.mapError((error) => failed(error.message)))
    const effective = KernelLimits.effectiveBacklog(Option.getOrUndefined(values.backlog), limits)
    const synAck = limits.tcpSynackRetries === undefined
      ? undefined
      : KernelLimits.handshakeTimeoutSeconds(limits.tcpSynackRetries)
    if (Option.getOrElse(values.json, () => false)) {
      return yield* writeLine(JSON.stringify({
        ...limits,
        ...(synAck === undefined ? {} : { synAckTimeoutSeconds: synAck }),
        backlog: effective,
        synQueue: KernelLimits.synQueue(effective, limits)
      }, (_, v) => (v === Number.POSITIVE_INFINITY ? "unlimited" : v)))
    }
    const rows = KernelLimits.entries.map((
      entry
    ) => [entry.key, formatLimit(limits[entry.key]), entry.setting, entry.governs])
    if (synAck !== undefined) {
      rows.push(["synAckTimeout", `${synAck}s`, "derived", "worst-case wait for a client's final ACK"])
    }
    rows.push(["backlog", KernelLimits.formatBacklog(effective), "--backlog", "accept queue listen() would get"])
    const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i]!.length)))
    const table = rows.map((row) => row.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell)).join("  "))
    yield* writeLine([...table, "", KernelLimits.synQueue(effective, limits)].join("\n"))
  })).pipe(Command.withDescription(probeSpec.summary))

/** Writes to stdout; a reader gone (EPIPE) fails instead of crashing. */
const writeStdout = (chunk: Uint8Array | string) =>
  Effect.async<void, CliFailure>((resume) => {
    process.stdout.write(chunk, (error) =>
      resume(
        error === null || error === undefined
          ? Effect.void
          : Effect.fail(
            failed(
              `stdout was closed before everything was written (${
                (error as NodeJS.ErrnoException).code ?? error.message
              })`
            )
          )
      ))
  })

const writeLine = (line: string) => writeStdout(line + "\n")

// --- client.

/**
 * Checks an echo against what was sent, as it arrives: only the bytes in flight are held.
 */
const echoChecker = () => {
  const sent: Array<Uint8Array> = []
  let offset = 0
  let verified = 0
  let sentTotal = 0
  return {
    sent: (chunk: Uint8Array) => {
      if (chunk.length === 0) return
      sent.push(chunk)
      sentTotal += chunk.length
    },
    /** The first differing byte's position, or undefined when `chunk` matches so far. */
    received: (chunk: Uint8Array): string | undefined => {
      for (let i = 0; i < chunk.length;) {
        const head = sent[0]
        if (head === undefined) return `the echo has more bytes than were sent (${sentTotal})`
        const n = Math.min(head.length - offset, chunk.length - i)
        if (Buffer.compare(head.subarray(offset, offset + n), chunk.subarray(i, i + n)) !== 0) {
          return `the echo differs from what was sent within bytes ${verified}-${verified + n}`
        }
        i += n
        offset += n
        verified += n
        if (offset === head.length) {
          sent.shift()
          offset = 0
        }
      }
      return undefined
    },
    complete: () => verified === sentTotal ? undefined : `the echo ended after ${verified} of ${sentTotal} bytes`
  }
}

const client = Command.make("client", cliOptions(clientFlags), (parsed) =>
  Effect.gen(function*() {
    const { values: flags } = yield* resolve(clientSpec, clientFlags, parsed)
    if (Option.isNone(flags.port)) return yield* usage("client needs --port PORT (or ECHO_PORT)", "client")
    const port = flags.port.value
    const timeout = Option.getOrElse(flags.timeout, () => Duration.seconds(10))
    return yield* Effect.gen(function*() {
      const checker = echoChecker()
      const input: Stream.Stream<Uint8Array, CliFailure> = Option.match(flags.message, {
        onNone: () =>
          Stream.fromAsyncIterable(
            process.stdin as AsyncIterable<Uint8Array>,
            (cause) => failed(`stdin: ${String(cause)}`)
          ),
        onSome: (text): Stream.Stream<Uint8Array, CliFailure> => Stream.make(Buffer.from(text))
      })
      const connection = yield* Client.connect({
        ...(Option.isSome(flags.host) ? { host: flags.host.value } : {}),
        port
      })
      const send = input.pipe(
        Stream.tap((chunk) => Effect.sync(() => checker.sent(chunk))),
        Stream.runForEachChunk(connection.writeAll),
        Effect.zipRight(connection.end)
      )
      const receive = Stream.runForEach(connection.stream, (chunk) => {
        const mismatch = checker.received(chunk)
        return mismatch === undefined ? writeStdout(chunk) : Effect.fail(failed(mismatch))
      })
      yield* Effect.all([send, receive], { concurrency: 2, discard: true })
      const incomplete = checker.complete()
      if (incomplete !== undefined) return yield* failed(incomplete)
    }).pipe(
      Effect.scoped,
      // A pending read of stdin cannot be interrupted: let it finish in the background, so the
      // timeout ends the command at its deadline instead of when stdin closes.
      Effect.disconnect,
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => failed(`no complete echo within ${Duration.format(timeout)}`)
      }),
      Effect.catchTags({
        ConnectError: (error) => Effect.fail(failed(error.message)),
        ConnectionError: (error) => Effect.fail(failed(error.message))
      })
    )
  })).pipe(Command.withDescription(clientSpec.summary))

// --- The program.

/**
 * The root command.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(program).pipe(
  Command.withDescription("A resource-safe TCP (IPv4) echo server on Effect."),
  Command.withSubcommands([serve, probe, client])
)

/** The text of a usage error @effect/cli found itself (rare: the check below finds them first). */
const validationText = (error: ValidationError.ValidationError): string =>
  // ANSI colour codes out: the message is one plain line.
  // eslint-disable-next-line no-control-regex
  HelpDoc.toAnsiText(error.error).replace(/\u001b\[[0-9;]*m/g, "").trim().replace(/\s*\n\s*/g, " ")

/**
 * Runs the command line `argv` (with the node and script paths, as `process.argv`): checks it
 * against the flags of its command, answers `--help` and `--version`, then runs the command.
 * Every failure is a `CliFailure`, whose `text` is what to print.
 *
 * @since 0.1.0
 * @category commands
 */
export const run = (version: string) => (argv: ReadonlyArray<string>) =>
  Effect.suspend(() => {
    // The test kit's runner, with flags of its own, in a process of its own (internal/testkit/launch.ts).
    if (argv[2] === "simulate") return Simulate.launch(argv)
    const checked = Flags.check(specs, argv.slice(2), process.stdin.isTTY === true)
    switch (checked._tag) {
      case "Help":
        return writeStdout(
          Flags.help(program, version, "a resource-safe TCP (IPv4) echo server on Effect.", specs, checked.command)
        )
      case "Version":
        return writeLine(`${program} ${version}`)
      case "Usage":
        return Effect.fail(usage(checked.message, checked.command?.name))
      case "BuiltIn":
      case "Run":
        return Effect.gen(function*() {
          // @effect/cli prints its own usage errors; they are reported here, in one format.
          const console = yield* Effect.console
          return yield* Command.run(command, { name: program, version })([...argv.slice(0, 2), ...checked.args]).pipe(
            Effect.withConsole({ ...console, error: () => Effect.void }),
            Effect.provideService(Given, checked._tag === "Run" ? checked.given : new Map()),
            Effect.catchIf(ValidationError.isValidationError, (error) =>
              Effect.fail(usage(validationText(error), checked._tag === "Run" ? checked.command.name : undefined)))
          )
        })
    }
  }).pipe(
    // Anything else a command logs goes to stderr, never into what it prints on stdout.
    Effect.provide(loggingLayer("pretty", LogLevel.Info))
  )
