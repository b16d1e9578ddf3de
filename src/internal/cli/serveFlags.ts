/**
 * `serve`'s flags, what they cannot say together, and the library's options they make.
 */
import { Duration, Effect, Option } from "effect"
import * as os from "node:os"
import * as Listener from "../../Listener.js"
import * as Prometheus from "../../Prometheus.js"
import * as Server from "../../Server.js"
import * as Checked from "../checked.js"
import * as Flags from "../flags.js"
import * as Options_ from "../options.js"
import { type CliFailure, usage } from "./failure.js"
import { logFormats } from "./output.js"

const maxInt = 2 ** 31 - 1

/** @internal */
export const logLevels = ["all", "trace", "debug", "info", "warning", "error", "fatal", "none"] as const

/** The metrics HTTP listener's own cap: a scraper needs one connection. @internal */
export const metricsMaxConnections = 16

const port = Flags.integer(0, 65535)
const logLevel = (text: string) => Flags.choice(logLevels)(text.toLowerCase() === "warn" ? "warning" : text)
const durationFlag = (zero: "zero allowed" | "positive") =>
  // Stryker disable next-line StringLiteral: equivalent (only what is expected is kept, not the option's name)
  Flags.duration((value) => Options_.duration("", value, zero))

/** A number of workers, or `auto`: one per core this process may use. */
const workersFlag = (text: string): Checked.Checked<number, string> =>
  text.toLowerCase() === "auto"
    ? Checked.valid(Math.max(1, os.availableParallelism()))
    : Checked.mapError(Flags.integer(1, 1024)(text), (expected) => `${expected}, or auto`)

const flags = {
  host: Flags.value(
    "host",
    "HOST",
    Flags.ipv4,
    "IPv4 address to bind, or localhost. Any address outside 127.0.0.0/8 is reachable from other hosts, and logged as such.",
    { variable: "ECHO_HOST", default: Listener.defaults.host }
  ),
  port: Flags.value("port", "PORT", port, "TCP port; 0 asks the kernel for any free one.", {
    variable: "ECHO_PORT",
    default: "0"
  }),
  backlog: Flags.value(
    "backlog",
    "N",
    Flags.integer(1, maxInt),
    "Accept queue requested from listen(); the kernel lowers it to net.core.somaxconn.",
    { variable: "ECHO_BACKLOG", default: String(Listener.defaults.backlog) }
  ),
  maxConnections: Flags.value(
    "max-connections",
    "N",
    Flags.integer(1, maxInt),
    `Connections served at once; beyond, up to ${Server.defaults.maxPending} more wait unread, and the rest are dropped.`,
    { variable: "ECHO_MAX_CONNECTIONS", default: String(Server.defaults.maxConnections) }
  ),
  idleTimeout: Flags.value(
    "idle-timeout",
    "DURATION",
    durationFlag("positive"),
    "Close a connection after this long with nothing moving (500ms, 30s, 5m, 2h).",
    { variable: "ECHO_IDLE_TIMEOUT", default: "none" }
  ),
  shutdownTimeout: Flags.value(
    "shutdown-timeout",
    "DURATION",
    durationFlag("zero allowed"),
    "On SIGINT, SIGTERM or SIGHUP, how long connections may finish before they are cut off.",
    { variable: "ECHO_SHUTDOWN_TIMEOUT", default: Duration.format(Server.defaults.shutdownTimeout) }
  ),
  drainDelay: Flags.value(
    "drain-delay",
    "DURATION",
    durationFlag("zero allowed"),
    "On SIGINT, SIGTERM or SIGHUP, how long the server still accepts while /readyz already answers 503, so that a load balancer stops sending first (Kubernetes' preStop pattern); then the port closes and --shutdown-timeout begins.",
    { variable: "ECHO_DRAIN_DELAY", default: "0s" }
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
    { variable: "ECHO_TRUSTED_PROXIES", default: Server.defaults.trustedProxies.join(",") }
  ),
  proxyHeaderTimeout: Flags.value(
    "proxy-header-timeout",
    "DURATION",
    durationFlag("positive"),
    "With --proxy-protocol: how long a connection's header may take to arrive whole before the connection is refused.",
    { variable: "ECHO_PROXY_HEADER_TIMEOUT", default: Duration.format(Server.defaults.headerTimeout) }
  ),
  workers: Flags.value(
    "workers",
    "N|auto",
    workersFlag,
    "Worker processes serving the port (node:cluster; on Node 22.12 and later each binds it with reusePort), auto for one per available core. Past 1, a primary runs them: it prints the address, serves the metrics and probes for all, restarts a worker that dies (and gives up on a crash loop), and shuts them all down on a signal.",
    { variable: "ECHO_WORKERS", default: "1" }
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
    // Stryker disable next-line StringLiteral: equivalent (only what is expected is kept, not the option's name)
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
    { variable: "ECHO_LOG_LEVEL", default: "info" }
  ),
  logFormat: Flags.value(
    "log-format",
    "FORMAT",
    Flags.choice(logFormats),
    "Log records as pretty text, JSON lines or logfmt lines, on stderr.",
    { variable: "ECHO_LOG_FORMAT", default: "pretty" }
  ),
  metricsPort: Flags.value(
    "metrics-port",
    "PORT",
    port,
    `Serve Prometheus metrics on http://127.0.0.1:PORT/metrics, and the probes /healthz (alive) and /readyz (accepting) (0: any free port), at most ${metricsMaxConnections} connections at once. Stdout's second line then says where: 'metrics on HOST:PORT'.`,
    { variable: "ECHO_METRICS_PORT", default: "off" }
  ),
  metricsHost: Flags.value(
    "metrics-host",
    "HOST",
    Flags.ipv4,
    "With --metrics-port: the IPv4 address it binds, such as a pod's 0.0.0.0 for the kubelet's HTTP probes and a scraper. Outside 127.0.0.0/8, anyone who reaches it reads the metrics; logged as such.",
    { variable: "ECHO_METRICS_HOST", default: Prometheus.defaults.host }
  ),
  inspectOnSigusr1: Flags.switch_(
    "inspect-on-sigusr1",
    "Let SIGUSR1 open Node's inspector on 127.0.0.1:9229, as Node does by default. Off, SIGUSR1 is logged and ignored: the inspector runs any code as this process's user for whoever can connect to it.",
    "ECHO_INSPECT_ON_SIGUSR1"
  )
}

/** @internal */
export type ServeFlags = typeof flags

/** `serve`'s flags, resolved. @internal */
export type Resolved = Flags.Resolved<ServeFlags>

/** @internal */
export const command: Flags.Command<ServeFlags> = {
  name: "serve",
  summary: "Run the echo server until SIGINT, SIGTERM or SIGHUP.",
  usage: "serve [FLAGS]",
  description: [
    "Run the echo server until SIGINT, SIGTERM or SIGHUP, then shut down gracefully: the port closes at once, and open connections get --shutdown-timeout to finish. SIGQUIT stops it at once, as a second signal does; SIGUSR2 is logged and ignored.",
    "Stdout gets one line, 'listening on HOST:PORT', once the server accepts, and with --metrics-port a second, 'metrics on HOST:PORT'. Logs go to stderr. A closed stdout or stderr (serve | head -1) never stops the server: what cannot be written is dropped.",
    "Each flag falls back to its variable; a flag wins over its variable."
  ],
  flags,
  sections: [{
    title: "Exit status",
    lines: [
      "  0      shut down gracefully, after SIGINT, SIGTERM or SIGHUP",
      "  1      could not serve (the port is taken, ...); with --workers, also a",
      "         crash loop, or a worker still running at the shutdown's deadline",
      "  2      a usage error: a flag, a variable, the command line",
      "  128+N  stopped at once by a second signal N during the shutdown (130",
      "         SIGINT, 143 SIGTERM, 129 SIGHUP) or by SIGQUIT (131); every",
      "         connection still open is reset, never closed as if it were whole"
    ]
  }]
}

/**
 * What the flags cannot say together, refused before anything starts: the metrics on the echo
 * port, and settings that would be silently ignored without the flag they belong to.
 *
 * @internal
 */
export const checkTogether = ({ sources, values }: Resolved): Effect.Effect<void, CliFailure> => {
  const metricsPort = Option.getOrUndefined(values.metricsPort)
  if (metricsPort !== undefined && metricsPort !== 0 && metricsPort === Option.getOrUndefined(values.port)) {
    return Effect.fail(
      usage(`${sources.metricsPort} ${metricsPort} is also the echo port (${sources.port}): give each its own`, "serve")
    )
  }
  if (metricsPort === undefined && sources.metricsHost !== undefined) {
    return Effect.fail(usage(
      `${sources.metricsHost} takes effect only with --metrics-port (or ECHO_METRICS_PORT): give it too, or drop it`,
      "serve"
    ))
  }
  const withoutProxy = Option.getOrElse(values.proxyProtocol, () => false)
    ? []
    : [sources.trustedProxies, sources.proxyHeaderTimeout].filter((s) => s !== undefined)
  if (withoutProxy.length === 0) return Effect.void
  const one = withoutProxy.length === 1
  return Effect.fail(usage(
    `${withoutProxy.join(" and ")} take${one ? "s" : ""} effect only with --proxy-protocol (or ECHO_PROXY_PROTOCOL): ` +
      `give it too, or drop ${one ? "it" : "them"}`,
    "serve"
  ))
}

/**
 * The library's options from the flags: only what was given, so defaults stay in one place.
 *
 * @internal
 */
export const serverOptions = (values: Flags.Values<ServeFlags>): Server.Options => {
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
    const value: Option.Option<unknown> = values[key]
    if (Option.isSome(value)) options[key] = value.value
  }
  if (Option.isSome(values.keepAliveDelay)) {
    options.keepAlive = true
    options.keepAliveInitialDelay = values.keepAliveDelay.value
  }
  if (Option.getOrElse(values.proxyProtocol, () => false)) {
    options.proxyProtocol = {
      ...(Option.isSome(values.trustedProxies) ? { trustedProxies: values.trustedProxies.value } : {}),
      ...(Option.isSome(values.proxyHeaderTimeout) ? { headerTimeout: values.proxyHeaderTimeout.value } : {})
    }
  }
  // Each key above is an option of the same name and type.
  return options as Server.Options
}

/**
 * ` (port from ECHO_PORT)`: where the option at fault was set, when the command line set it.
 *
 * @internal
 */
export const setBy = (sources: Flags.Sources<ServeFlags>, option: string | undefined): string => {
  const source = option === undefined ? undefined : (sources as Record<string, string | undefined>)[option]
  return source === undefined ? "" : ` (${option} from ${source})`
}
