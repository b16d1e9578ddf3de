/**
 * The `effect-tcp-echo` command line: `serve`, `probe` and `client`. Flags fall back to `ECHO_*`
 * environment variables through Effect's `Config`; all behaviour lives in the library modules,
 * this module only parses, reports and maps failures to one clear line.
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
import { Config, Console, Data, Duration, Effect, Layer, Logger, LogLevel, Option, Stream } from "effect"
import * as parseDuration from "./internal/duration.js"
import * as Heap from "./internal/heap.js"
import * as KernelLimits from "./KernelLimits.js"
import * as Client from "./Client.js"
import * as Listener from "./Listener.js"
import * as Server from "./Server.js"

/** A flag with its `ECHO_*` variable: the flag wins, the variable fills in, else `None`. */
const flag = <A>(options: Options.Options<A>, variable: Config.Config<A>, description: string) =>
  options.pipe(Options.withFallbackConfig(variable), Options.optional, Options.withDescription(description))

const durationFlag = (name: string, variable: string, description: string) =>
  Options.text(name).pipe(
    Options.withFallbackConfig(Config.string(variable)),
    Options.mapEffect((text) =>
      Option.match(parseDuration.parse(text), {
        onNone: () =>
          Effect.fail(
            invalidValue(`--${name} / ${variable}: ${JSON.stringify(text)} is not a duration (e.g. 500ms, 5s, 1m)`)
          ),
        onSome: Effect.succeed
      })
    ),
    Options.optional,
    Options.withDescription(description)
  )

const invalidValue = (text: string) => ValidationError.invalidValue(HelpDoc.p(text))

/** Which flag and variable set each option, for error messages. */
const sources: Record<string, string> = {
  host: "--host / ECHO_HOST",
  port: "--port / ECHO_PORT",
  backlog: "--backlog / ECHO_BACKLOG",
  maxConnections: "--max-connections / ECHO_MAX_CONNECTIONS",
  idleTimeout: "--idle-timeout / ECHO_IDLE_TIMEOUT",
  shutdownTimeout: "--shutdown-timeout / ECHO_SHUTDOWN_TIMEOUT",
  metricsPort: "--metrics-port / ECHO_METRICS_PORT"
}

const logLevels = ["all", "trace", "debug", "info", "warning", "error", "fatal", "none"] as const
const logFormats = ["pretty", "json", "logfmt"] as const

const serveOptions = {
  host: flag(Options.text("host"), Config.string("ECHO_HOST"), "IPv4 address to bind, or localhost (default 127.0.0.1)"),
  port: flag(Options.integer("port"), Config.integer("ECHO_PORT"), "TCP port, 0 for any free port (default 0)"),
  backlog: flag(Options.integer("backlog"), Config.integer("ECHO_BACKLOG"), "requested accept queue (default 511)"),
  maxConnections: flag(
    Options.integer("max-connections"),
    Config.integer("ECHO_MAX_CONNECTIONS"),
    "connections served at once (default 10000)"
  ),
  idleTimeout: durationFlag("idle-timeout", "ECHO_IDLE_TIMEOUT", "close connections idle this long (e.g. 30s)"),
  shutdownTimeout: durationFlag(
    "shutdown-timeout",
    "ECHO_SHUTDOWN_TIMEOUT",
    "how long shutdown waits for connections (default 5s)"
  ),
  noDelay: flag(Options.boolean("no-delay"), Config.boolean("ECHO_NO_DELAY"), "set TCP_NODELAY on connections"),
  keepAlive: flag(Options.boolean("keep-alive"), Config.boolean("ECHO_KEEP_ALIVE"), "set SO_KEEPALIVE on connections"),
  // Declared so `serve --log-level X` parses and shows in help; @effect/cli's built-in option of
  // the same name applies it (see loggingLayer).
  logLevel: Options.choice("log-level", logLevels).pipe(
    Options.optional,
    Options.withDescription("minimum level logged (default info; variable ECHO_LOG_LEVEL)")
  ),
  logFormat: flag(
    Options.choice("log-format", logFormats),
    Config.literal(...logFormats)("ECHO_LOG_FORMAT"),
    "pretty, json or logfmt (default pretty)"
  ),
  metricsPort: flag(
    Options.integer("metrics-port"),
    Config.integer("ECHO_METRICS_PORT"),
    "serve Prometheus metrics on http://127.0.0.1:PORT/metrics (0: any free port)"
  )
}

type Parsed<T> = { readonly [K in keyof T]: T[K] extends Options.Options<infer A> ? A : never }

/** The library's options from the parsed flags: only what was given, so defaults stay in one place. */
const serverOptions = (flags: Parsed<typeof serveOptions>): Server.Options => {
  const options: Record<string, unknown> = {}
  for (const key of ["host", "port", "backlog", "maxConnections", "idleTimeout", "shutdownTimeout", "noDelay", "keepAlive"] as const) {
    const value: Option.Option<unknown> = flags[key]
    if (Option.isSome(value)) options[key] = value.value
  }
  return options as Server.Options
}

/**
 * The logger the flags ask for, and the minimum level: `--log-level` when the command saw it;
 * when @effect/cli's built-in option of the same name took it first (it then sets the level
 * around the whole command itself), nothing; else `ECHO_LOG_LEVEL`. So the flag always wins.
 *
 * @since 0.1.0
 * @category logging
 */
export const loggingLayer = (
  format: (typeof logFormats)[number],
  level: Option.Option<(typeof logLevels)[number]>,
  argv: ReadonlyArray<string> = process.argv
) => {
  const logger = format === "json"
    ? Logger.json
    : format === "logfmt"
    ? Logger.logFmt
    : Logger.pretty
  if (Option.isSome(level)) {
    return Layer.merge(logger, Logger.minimumLogLevel(LogLevel.fromLiteral(capitalize(level.value))))
  }
  const flagGiven = argv.some((arg) => arg === "--log-level" || arg.startsWith("--log-level="))
  return flagGiven ? logger : Layer.merge(
    logger,
    Layer.unwrapEffect(
      Effect.map(
        Config.option(Config.literal(...logLevels)("ECHO_LOG_LEVEL")),
        Option.match({
          onNone: () => Layer.empty,
          onSome: (level) => Logger.minimumLogLevel(LogLevel.fromLiteral(capitalize(level)))
        })
      )
    )
  )
}

const capitalize = <S extends string>(s: S) => (s.charAt(0).toUpperCase() + s.slice(1)) as Capitalize<S>

const formatLimit = (value: unknown): string =>
  typeof value === "number"
    ? (value === Number.POSITIVE_INFINITY ? "unlimited" : String(value))
    : typeof value === "object" && value !== null
    ? Object.entries(value).map(([k, v]) => `${k}=${formatLimit(v)}`).join(" ")
    : "unavailable"

/** Descriptors kept free for everything that is not a connection (logs, /proc, metrics HTTP). */
const descriptorReserve = 32

/**
 * Fits the connection limits to the open-files limit. Past it, accept() fails with EMFILE and
 * libuv closes the connection without telling anyone; capped here, Node drops the excess itself
 * (its 'drop' event), which the listener logs and counts.
 */
const fitToDescriptors = (options: Server.Options, limits: KernelLimits.Limits, inUse: number) => {
  const maxConnections = options.maxConnections ?? Server.defaults.maxConnections
  const maxPending = options.maxPending ?? Server.defaults.maxPending
  const soft = limits.openFiles?.soft
  if (soft === undefined || !Number.isFinite(soft)) return { options, budget: undefined }
  const budget = Math.max(1, soft - inUse - descriptorReserve)
  if (maxConnections + maxPending <= budget) return { options, budget }
  const connections = Math.min(maxConnections, budget)
  return {
    options: { ...options, maxConnections: connections, maxPending: Math.max(0, budget - connections) },
    budget
  }
}

/** Startup report: backlog, SYN queue, descriptors against the connection limits. */
const report = (requested: Server.Options, options: Server.Options, limits: KernelLimits.Limits) =>
  Effect.gen(function*() {
    const backlog = KernelLimits.effectiveBacklog(options.backlog, limits)
    yield* Effect.logInfo(`backlog ${KernelLimits.formatBacklog(backlog)}`).pipe(
      Effect.annotateLogs({ backlogRequested: backlog.requested, backlogEffective: backlog.effective })
    )
    if (limits.tcpMaxSynBacklog !== undefined) {
      yield* Effect.logInfo(`SYN queue limit ${limits.tcpMaxSynBacklog} (net.ipv4.tcp_max_syn_backlog)`)
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
const descriptorsInUse = Effect.flatMap(FileSystem.FileSystem, (fs) =>
  fs.readDirectory("/proc/self/fd").pipe(Effect.map((fds) => fds.length), Effect.orElseSucceed(() => 0)))

const isPort = (port: number) => Number.isInteger(port) && port >= 0 && port <= 65535

/** `GET /metrics` on `port`, in the current scope. */
const serveMetrics = (port: number) =>
  Effect.gen(function*() {
    // Loaded only when asked for: OpenTelemetry's module graph is large, and Node's loader opens
    // its files concurrently, which alone exhausts a low open-files limit at startup.
    const Prometheus = yield* Effect.promise(() => import("./Prometheus.js"))
    return yield* Prometheus.serve({ port }).pipe(
      Effect.mapError((error) =>
        new CliFailure({ message: `cannot serve metrics: ${error.message} (set by ${sources.metricsPort})` })
      )
    )
  })

const serve = Command.make("serve", serveOptions, (flags) => {
  const requested = serverOptions(flags)
  return Effect.gen(function*() {
    if (Option.isSome(flags.metricsPort) && !isPort(flags.metricsPort.value)) {
      return yield* new CliFailure({ message: `invalid metrics port: ${flags.metricsPort.value} (set by ${sources.metricsPort})` })
    }
    // Read before listening (the limits shape the server), logged after: the address comes first.
    const probed = yield* Effect.either(KernelLimits.read).pipe(Logger.withMinimumLogLevel(LogLevel.None))
    const limits = probed._tag === "Right" ? probed.right : {}
    const { options } = fitToDescriptors(requested, limits, yield* descriptorsInUse)
    // glibc would otherwise unmap and fault in its heap top at every GC under load (heap.ts).
    yield* Effect.sync(Heap.relaxTrim)
    // Metrics first: a port that cannot be served fails before the server is announced, and the
    // scope releases it last, so that the echo server's drain can be watched to its end.
    const metrics = Option.isNone(flags.metricsPort) ? undefined : yield* serveMetrics(flags.metricsPort.value)
    const server = yield* Server.make(options)
    const address = Listener.formatAddress(server.address)
    // The address is what `serve` gives its caller: printed first, whatever the log level.
    yield* Effect.logInfo(`listening on ${address}`).pipe(
      Effect.annotateLogs("address", address),
      Logger.withMinimumLogLevel(LogLevel.Info)
    )
    // A malformed file is reported and treated as unknown, not fatal.
    if (probed._tag === "Left") yield* Effect.logWarning(probed.left.message)
    yield* report(requested, options, limits)
    if (metrics !== undefined) {
      const url = `http://${Listener.formatAddress(metrics)}/metrics`
      yield* Effect.logInfo(`metrics on ${url}`).pipe(Effect.annotateLogs("metrics", url))
    }
    return yield* Effect.never
  }).pipe(
    Effect.scoped,
    Effect.catchTags({
      ListenError: (error) =>
        Effect.fail(new CliFailure({
          message: error.message + (error.option !== undefined && sources[error.option] !== undefined
            ? ` (set by ${sources[error.option]})`
            : error.reason === "InvalidOption" ? "" : ` (set by ${sources.host}, ${sources.port})`)
        })),
      ServerError: (error) =>
        Effect.fail(new CliFailure({
          message: error.message + (sources[error.option] === undefined ? "" : ` (set by ${sources[error.option]})`)
        }))
    }),
    Effect.provide(loggingLayer(Option.getOrElse(flags.logFormat, () => "pretty" as const), flags.logLevel))
  )
}).pipe(Command.withDescription("Run the echo server until SIGINT or SIGTERM, then shut down gracefully."))

const probe = Command.make("probe", {
  json: Options.boolean("json").pipe(Options.withDescription("one JSON object instead of a table")),
  backlog: flag(Options.integer("backlog"), Config.integer("ECHO_BACKLOG"), "a backlog to compute the effective value of")
}, ({ backlog, json }) =>
  Effect.gen(function*() {
    const limits = yield* KernelLimits.read
    const effective = KernelLimits.effectiveBacklog(Option.getOrUndefined(backlog), limits)
    const synAck = limits.tcpSynackRetries === undefined
      ? undefined
      : KernelLimits.handshakeTimeoutSeconds(limits.tcpSynackRetries)
    if (json) {
      return yield* Console.log(JSON.stringify({
        ...limits,
        ...(synAck === undefined ? {} : { synAckTimeoutSeconds: synAck }),
        backlog: effective
      }, (_, v) => (v === Number.POSITIVE_INFINITY ? "unlimited" : v)))
    }
    const rows = KernelLimits.entries.map((entry) => [entry.key, formatLimit(limits[entry.key]), entry.setting, entry.governs])
    if (synAck !== undefined) rows.push(["synAckTimeout", `${synAck}s`, "derived", "worst-case wait for a client's final ACK"])
    rows.push(["backlog", KernelLimits.formatBacklog(effective), "--backlog", "accept queue listen() would get"])
    const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i]!.length)))
    for (const row of rows) {
      yield* Console.log(row.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell)).join("  "))
    }
  }).pipe(
    Effect.catchTag("KernelLimitsError", (error) => Effect.fail(new CliFailure({ message: error.message })))
  )).pipe(Command.withDescription("Print the kernel limits that govern a TCP server."))

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
    complete: () =>
      verified === sentTotal ? undefined : `the echo ended after ${verified} of ${sentTotal} bytes`
  }
}

const writeStdout = (chunk: Uint8Array) =>
  Effect.async<void>((resume) => {
    process.stdout.write(chunk, () => resume(Effect.void))
  })

const client = Command.make("client", {
  host: flag(Options.text("host"), Config.string("ECHO_HOST"), "server address (default 127.0.0.1)"),
  port: Options.integer("port").pipe(
    Options.withFallbackConfig(Config.integer("ECHO_PORT")),
    Options.withDescription("server port")
  ),
  timeout: durationFlag("timeout", "ECHO_TIMEOUT", "give up when the whole exchange takes longer (default 10s)"),
  message: Options.text("message").pipe(Options.optional, Options.withDescription("send this instead of stdin"))
}, (flags) =>
  Effect.gen(function*() {
    const checker = echoChecker()
    const input: Stream.Stream<Uint8Array, CliFailure> = Option.match(flags.message, {
      onNone: () => Stream.fromAsyncIterable(process.stdin as AsyncIterable<Uint8Array>, (cause) => new CliFailure({ message: `stdin: ${String(cause)}` })),
      onSome: (text): Stream.Stream<Uint8Array, CliFailure> => Stream.make(Buffer.from(text))
    })
    const connection = yield* Client.connect({
      ...(Option.isSome(flags.host) ? { host: flags.host.value } : {}),
      port: flags.port
    })
    const send = input.pipe(Stream.tap((chunk) => Effect.sync(() => checker.sent(chunk))), Stream.runForEachChunk(connection.writeAll), Effect.zipRight(connection.end))
    const receive = Stream.runForEach(connection.stream, (chunk) => {
      const mismatch = checker.received(chunk)
      return mismatch === undefined ? writeStdout(chunk) : Effect.fail(new CliFailure({ message: mismatch }))
    })
    yield* Effect.all([send, receive], { concurrency: 2, discard: true })
    const incomplete = checker.complete()
    if (incomplete !== undefined) return yield* new CliFailure({ message: incomplete })
  }).pipe(
    Effect.scoped,
    // A pending read of stdin cannot be interrupted: let it finish in the background, so the
    // timeout ends the command at its deadline instead of when stdin closes.
    Effect.disconnect,
    Effect.timeoutFail({
      duration: Option.getOrElse(flags.timeout, () => Duration.seconds(10)),
      onTimeout: () => new CliFailure({ message: `no complete echo within ${Duration.format(Option.getOrElse(flags.timeout, () => Duration.seconds(10)))}` })
    }),
    Effect.catchTags({
      ConnectError: (error) => Effect.fail(new CliFailure({ message: error.message })),
      ConnectionError: (error) => Effect.fail(new CliFailure({ message: error.message }))
    })
  )).pipe(Command.withDescription("Send stdin (or --message) to an echo server, half-close, print the echo; exit 0 only if it matches."))

/**
 * A failure the command line reports as one line on stderr before exiting non-zero.
 *
 * @since 0.1.0
 * @category errors
 */
export class CliFailure extends Data.TaggedError("CliFailure")<{ readonly message: string }> {}

/**
 * The root command.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("effect-tcp-echo").pipe(
  Command.withDescription("A resource-safe TCP (IPv4) echo server on Effect."),
  Command.withSubcommands([serve, probe, client])
)

/**
 * Runs the command line on `argv` (without the node and script paths).
 *
 * @since 0.1.0
 * @category commands
 */
export const run = (version: string) => Command.run(command, { name: "effect-tcp-echo", version })
