/**
 * The listening socket as a scoped resource: acquiring it binds and listens on an IPv4 address,
 * releasing it closes the port and every socket it accepted that is still open. It hands out
 * accepted sockets, paused, to whoever serves them.
 *
 * @since 0.1.0
 */
import { callback, runner } from "#line/runtime"
import type { DurationInput } from "#line/types"
import { Data, Duration, Effect } from "effect"
import type { Scope } from "effect"
import type * as net from "node:net"
import * as Checked from "./internal/checked.js"
import * as errno from "./internal/errno.js"
import * as ExitReset from "./internal/exitReset.js"
import { LogAggregator } from "./internal/logAggregator.js"
import * as Options_ from "./internal/options.js"
import * as Socket_ from "./internal/socket.js"
import * as Transport from "./internal/transport.js"
import * as Metrics from "./Metrics.js"

/**
 * Where and how to listen. Every field has a default, stated here once.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** IPv4 address to bind, a dotted quad or `localhost` (= 127.0.0.1). Default `127.0.0.1`. */
  readonly host?: string
  /** TCP port, 0-65535; 0 asks the kernel for any free port. Default 0. */
  readonly port?: number
  /** Requested accept-queue size; the kernel clamps it to `net.core.somaxconn`. Default 511. */
  readonly backlog?: number
  /**
   * Accepted sockets held at most, served or waiting; beyond it the kernel's connection is closed
   * at once and counted as dropped (`max_connections`). Default: no cap.
   */
  readonly maxAccepted?: number
  /** `TCP_NODELAY` on accepted sockets (no Nagle delay for small writes). Default false. */
  readonly noDelay?: boolean
  /** `SO_KEEPALIVE` on accepted sockets. Default false. */
  readonly keepAlive?: boolean
  /**
   * Idle time before the first keepalive probe, when `keepAlive` is on: whole seconds from 1 s to
   * 32767 s (Linux's `TCP_KEEPIDLE`). Default: the kernel's `net.ipv4.tcp_keepalive_time`.
   */
  readonly keepAliveInitialDelay?: DurationInput
  /**
   * In a `node:cluster` worker: false asks the primary for its listening socket on this address,
   * shared by every worker that asks for the same one (`Workers` sets it). Default true: this
   * process binds its own socket, in a worker too.
   */
  readonly exclusive?: boolean
  /**
   * `SO_REUSEPORT`: several processes bind the same port, each its own socket, and the kernel
   * spreads new connections among them (`Workers` sets it on Node 22.12 and later, which alone
   * have it; refused as an invalid option on older Node). Default false.
   */
  readonly reusePort?: boolean
}

/**
 * Whether the running Node has `net`'s `reusePort` (22.12 and later in 22, 23.1 and later).
 *
 * @since 0.1.0
 * @category constants
 */
export const reusePortSupported: boolean = (() => {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number)
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12)
})()

/**
 * The defaults of {@link Options}.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  host: "127.0.0.1",
  port: 0,
  backlog: 511
} as const

/**
 * An IPv4 address and port.
 *
 * @since 0.1.0
 * @category models
 */
export interface Address {
  readonly host: string
  readonly port: number
}

/**
 * `HOST:PORT`, the form every log line and message uses.
 *
 * @since 0.1.0
 * @category utils
 */
export const formatAddress = (address: Address): string => `${address.host}:${address.port}`

/**
 * Why listening failed. `InvalidOption` is raised before any socket exists.
 *
 * @since 0.1.0
 * @category errors
 */
export type ListenErrorReason = errno.ListenReason | "InvalidOption"

/**
 * Listening failed: the address is taken, not allowed, not local, or an option is invalid.
 *
 * @since 0.1.0
 * @category errors
 */
export class ListenError extends Data.TaggedError("ListenError")<{
  readonly reason: ListenErrorReason
  /** `HOST:PORT` as requested. */
  readonly address: string
  /** The errno code (`EADDRINUSE`), when the kernel refused. */
  readonly code?: string
  readonly syscall?: string
  /** The invalid option's name and value, for `InvalidOption`. */
  readonly option?: string
  readonly value?: unknown
  /** What a valid value looks like, for `InvalidOption`. */
  readonly expected?: string
  readonly cause?: unknown
}> {
  override get message(): string {
    switch (this.reason) {
      case "AddressInUse":
        return `${this.address} is already in use`
      case "PermissionDenied":
        return `permission denied to listen on ${this.address} (ports below 1024 need privileges)`
      case "AddressNotAvailable":
        return `${this.address} is not an address of this machine`
      case "InvalidOption":
        return `invalid ${this.option}: ${Options_.showValue(this.value)} (expected ${this.expected})`
      case "Unknown":
        return `cannot listen on ${this.address}: ${this.code ?? String(this.cause)}`
    }
  }
}

/**
 * An accepted socket: a `node:net` socket, of which these are the members the server uses (or,
 * under `TestKit`'s simulation, a simulated one).
 *
 * @since 0.1.0
 * @category models
 */
export interface Socket extends Transport.Socket {}

/**
 * A bound, listening socket.
 *
 * @since 0.1.0
 * @category models
 */
export interface Listener {
  /** The bound address, with the port the kernel chose when 0 was asked. */
  readonly address: Address
  /** The backlog passed to `listen()` (before the kernel's clamp). */
  readonly backlog: number
  /**
   * Waits for the next accepted socket. It arrives paused (nothing is read until its consumer
   * resumes it) and with an `'error'` listener; the consumer owns it and must destroy it, and the
   * listener's release destroys it anyway if it is still open then.
   */
  readonly accept: Effect.Effect<Socket>
  /**
   * Switches to push mode: every socket accepted from now on (and any waiting for `accept`) is
   * given to `f` as it arrives, on Node's callback, with no queue in between. `f` owns it as
   * above. For servers that decide admission themselves; one consumer at a time.
   */
  readonly handoff: (f: (socket: Socket) => void) => Effect.Effect<void>
  /** Sockets accepted and not yet taken by `accept`. */
  readonly pending: Effect.Effect<number>
  /**
   * Stops accepting at once: closes the listening socket (the port is free when this returns) and
   * destroys the sockets nobody has taken yet, counting them as dropped (`shutdown`). Idempotent.
   */
  readonly close: Effect.Effect<void>
  /**
   * Stops accepting for now: the listening socket closes (a new connection is refused), sockets
   * accepted already go on. Idempotent; `resume` listens again.
   */
  readonly pause: Effect.Effect<void>
  /** Listens again on the same address after `pause`; fails if the port was taken meanwhile. */
  readonly resume: Effect.Effect<void, ListenError>
  /** Changes the cap of sockets held (`maxAccepted`), from the next connection on. */
  readonly setMaxAccepted: (maxAccepted: number) => Effect.Effect<void>
}

/**
 * The options with defaults applied and every value checked, or the first invalid one.
 *
 * @internal
 */
export const validate = (options: Options): Checked.Checked<Valid, Options_.Invalid> =>
  Checked.gen(function*() {
    const host = yield* Checked.value(Options_.ipv4("host", options.host ?? defaults.host))
    const port = yield* Checked.value(Options_.integer("port", options.port ?? defaults.port, 0, 65535))
    const backlog = yield* Checked.value(Options_.integer("backlog", options.backlog ?? defaults.backlog, 1))
    const maxAccepted = options.maxAccepted === undefined
      ? undefined
      : yield* Checked.value(Options_.integer("maxAccepted", options.maxAccepted, 1))
    const keepAliveInitialDelay = options.keepAliveInitialDelay === undefined
      ? undefined
      : yield* Checked.value(Options_.keepAliveDelay("keepAliveInitialDelay", options.keepAliveInitialDelay))
    if (options.reusePort === true && !reusePortSupported) {
      return Checked.invalid({
        option: "reusePort",
        value: true,
        expected: `false on Node ${process.versions.node} (reusePort needs Node 22.12 or later)`
      })
    }
    return Checked.valid({
      host,
      port,
      backlog,
      maxAccepted,
      noDelay: options.noDelay ?? false,
      keepAlive: options.keepAlive ?? false,
      keepAliveInitialDelayMs: keepAliveInitialDelay === undefined ? 0 : Duration.toMillis(keepAliveInitialDelay),
      exclusive: options.exclusive ?? true,
      reusePort: options.reusePort ?? false
    })
  })

/** @internal */
export interface Valid {
  readonly host: string
  readonly port: number
  readonly backlog: number
  readonly maxAccepted: number | undefined
  readonly noDelay: boolean
  readonly keepAlive: boolean
  readonly keepAliveInitialDelayMs: number
  readonly exclusive: boolean
  readonly reusePort: boolean
}

/** `HOST:PORT` as requested, for errors about these options. @internal */
export const requestedAddress = (options: Options): string =>
  `${options.host ?? defaults.host}:${String(options.port ?? defaults.port)}`

/**
 * Binds and listens. The listening socket is released with the scope: the port is closed, every
 * accepted socket still open is destroyed, and the release returns once the kernel has let go of
 * all of them. The release is registered before `listen()` is called, so an interrupted or failed
 * listen leaks nothing.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Listener, ListenError, Scope.Scope> =>
  Effect.flatMap(
    Effect.mapError(Checked.toEffect(validate(options)), (invalid) =>
      new ListenError({ reason: "InvalidOption", address: requestedAddress(options), ...invalid })),
    (valid) =>
      Effect.gen(function*() {
        // The address as asked, then as bound (the port the kernel chose for 0): what errors and logs name.
        let address = `${valid.host}:${valid.port}`
        const log = (yield* runner()).fork
        // The metric labels of the fiber that starts the listener are on everything it counts.
        const labels = yield* Metrics.currentLabels
        // Accepted sockets nobody has taken yet, and the fibers waiting in `accept` for one.
        const waiting: Array<Socket> = []
        const takers: Array<(taken: Effect.Effect<Socket>) => void> = []
        let consumer: ((socket: Socket) => void) | undefined
        // Every accepted socket still open: the safety net that makes the release leak-free even
        // when a consumer forgets one, and what is reset if the process exits meanwhile.
        const open = new Set<Socket>()
        const transport = yield* Transport.CurrentTransport
        yield* ExitReset.track(open, transport)
        let accepting = true
        let handle: Transport.Server | undefined
        // Drops come in floods: the first is logged, the rest summed up once a second. Registered
        // before the socket, so the last summary is written after the listener has closed.
        const logs = new LogAggregator({
          emit: (record) =>
            log(record),
          schedule: (f, millis) => transport.schedule(millis, f)
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => logs.flush()))
        // Stops accepting: the listening socket is closed (the port is free when this returns), and
        // sockets nobody took are destroyed. Idempotent; the release and `close` share it.
        const stopAccepting = () => {
          if (!accepting) return
          accepting = false
          handle?.close()
          if (waiting.length > 0) {
            Metrics.updateUnsafe(Metrics.connectionsDropped, waiting.length, labels.reason("shutdown"))
          }
          for (const socket of waiting.splice(0)) {
            Socket_.close(socket, "reset")
          }
          // Nothing will ever arrive: fibers waiting in `accept` are interrupted, not left hanging.
          for (const taker of takers.splice(0)) taker(Effect.interrupt)
        }

        const server = yield* Effect.acquireRelease(
          Effect.sync(() =>
            handle = transport.createServer({
              allowHalfOpen: true,
              pauseOnConnect: true,
              noDelay: valid.noDelay,
              keepAlive: valid.keepAlive,
              keepAliveInitialDelay: valid.keepAliveInitialDelayMs
            })
          ),
          (server) =>
            callback<void>((resume) => {
              stopAccepting()
              // The 'close' event waits for every accepted socket: destroy those still open.
              server.close(() => resume(Effect.void))
              for (const socket of open) Socket_.close(socket, "reset")
              open.clear()
            })
        )
        if (valid.maxAccepted !== undefined) server.maxConnections = valid.maxAccepted
        server.on("drop", (drop?: net.DropArgument) => {
          Metrics.updateUnsafe(Metrics.connectionsDropped, 1, labels.reason("max_connections"))
          // Stryker disable next-line OptionalChaining: equivalent (Node 20 and the simulation always pass the drop argument)
          const peer = `${drop?.remoteAddress}:${drop?.remotePort}`
          logs.add(
            "drop",
            peer,
            "Warning",
            `dropped connections (${valid.maxAccepted} held)`,
            () => Effect.logWarning(`dropped connection from ${peer}: ${valid.maxAccepted} connections held`)
          )
        })
        function forget(this: Socket) {
          open.delete(this)
        }
        server.on("connection", (socket: Socket) => {
          Metrics.updateUnsafe(Metrics.connectionsAccepted, 1, labels.base)
          if (!accepting) {
            Socket_.close(socket, "reset")
            Metrics.updateUnsafe(Metrics.connectionsDropped, 1, labels.reason("shutdown"))
            return
          }
          open.add(socket)
          // Until a consumer installs its own, an error on a waiting socket must not crash the process.
          socket.on("error", ignore)
          socket.on("close", forget)
          if (consumer !== undefined) consumer(socket)
          else if (takers.length > 0) takers.shift()!(Effect.succeed(socket))
          else waiting.push(socket)
        })

        // Listening, first and after a pause: the port asked for, then the one the kernel gave.
        let listenPort = valid.port
        // While a listen is under way its own handler reports its failure, not the one below.
        let listening = false
        const listen = callback<void, ListenError>((resume) => {
          listening = true
          const onError = (error: Error) => {
            listening = false
            const code = errno.errnoCode(error)
            const syscall = errno.errnoSyscall(error)
            resume(Effect.fail(
              new ListenError({
                reason: errno.listenReason(code),
                address,
                ...(code === undefined ? {} : { code }),
                ...(syscall === undefined ? {} : { syscall }),
                cause: error
              })
            ))
          }
          server.once("error", onError)
          // `reusePort` is Node 22.12's, absent from the types of Node 20; passed only when asked.
          const listenOptions: net.ListenOptions & { reusePort?: boolean } = {
            host: valid.host,
            port: listenPort,
            backlog: valid.backlog,
            exclusive: valid.exclusive,
            ...(valid.reusePort ? { reusePort: true } : {})
          }
          server.listen(listenOptions, () => {
            listening = false
            server.off("error", onError)
            resume(Effect.void)
          })
        })
        yield* listen
        // After listening, a server-level error (accept failing) must be seen, not crash the process.
        server.on("error", (error) => {
          if (!listening) log(Effect.logWarning(`listener on ${address}: ${error.message}`))
        })

        const bound = server.address() as net.AddressInfo
        listenPort = bound.port
        address = `${valid.host}:${bound.port}`
        const close = Effect.sync(stopAccepting)
        let paused = false
        const pause = Effect.sync(() => {
          if (!accepting || paused) return
          paused = true
          server.close()
        })
        const resume = Effect.suspend(() => {
          if (!accepting || !paused) return Effect.void
          return Effect.map(listen, () => {
            paused = false
          })
        })
        const setMaxAccepted = (maxAccepted: number) =>
          Effect.sync(() => {
            server.maxConnections = maxAccepted
          })
        const accept = callback<Socket>((resume) => {
          const socket = waiting.shift()
          if (socket !== undefined) return resume(Effect.succeed(socket))
          if (!accepting) return resume(Effect.interrupt)
          const taker = resume
          takers.push(taker)
          return Effect.sync(() => {
            const i = takers.indexOf(taker)
            if (i >= 0) takers.splice(i, 1)
          })
        })
        const handoff = (f: (socket: Socket) => void) =>
          Effect.sync(() => {
            consumer = f
            for (const socket of waiting.splice(0)) f(socket)
          })
        return {
          address: { host: bound.address, port: bound.port },
          backlog: valid.backlog,
          accept,
          handoff,
          pending: Effect.sync(() => waiting.length),
          close,
          pause,
          resume,
          setMaxAccepted
        } satisfies Listener
      })
  )

const ignore = () => {}

/**
 * This module as a namespace, the shape the root entry point gives it:
 * `import { Listener } from "effect-tcp-echo/Listener"`, as well as
 * `import * as Listener from "effect-tcp-echo/Listener"`.
 *
 * @since 0.1.0
 */
export * as Listener from "./Listener.js"
