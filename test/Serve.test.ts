/**
 * `serve` and its signals in the test's process: the one runner with one server, what it writes
 * on stdout and in the log, its readiness until the first signal, its graceful end, the failures
 * it reports; and the signal guard on its own (a forced exit recorded, not performed). Signals are
 * emitted to this process's listeners (`process.emit`), not sent. (The binary as a user runs it:
 * Cli.test.ts; the forced exits with real processes: ForcedExit.test.ts.)
 */
import { extendScope } from "#line/kit"
import { withEnv } from "#test-line/commandLine"
import { line } from "#test-line/examples"
import { capturing } from "#test-line/logging"
import { NodeFileSystem } from "@effect/platform-node"
import { afterEach, describe, expect, it, vi } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import * as net from "node:net"
import * as Cli from "../src/Cli.js"
import { Client, KernelLimits } from "../src/index.js"
import * as Output from "../src/internal/cli/output.js"
import * as Signals from "../src/internal/signals.js"

afterEach(() => {
  vi.restoreAllMocks()
})

const platform = Layer.provideMerge(KernelLimits.layer, NodeFileSystem.layer)

/** What the program writes on stdout, kept here instead. */
const stdout = () => {
  const writes: Array<string> = []
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    writes.push(String(chunk))
    return true
  })
  return writes
}

/** Polls until `done` (bounded, no timing assertion). */
const until = async (done: () => boolean | Promise<boolean>) => {
  for (let i = 0; i < 1000 && !(await done()); i++) await new Promise((r) => setTimeout(r, 10))
  expect(await done()).toBe(true)
}

describe("serve, run in this process", () => {
  it("writes its address and its metrics' on stdout, is ready until the first signal, and ends gracefully", async () => {
    const writes = stdout()
    const log = capturing()
    const fiber = Effect.runFork(
      log.around(Cli.program("test")(["node", "bin.js", "serve", "--metrics-port", "0", "--drain-delay", "300ms"]))
        .pipe(Effect.provide(platform))
    )
    await until(() => writes.length > 0)
    const [, port, metrics] = /^listening on 127\.0\.0\.1:(\d+)\nmetrics on 127\.0\.0\.1:(\d+)\n$/.exec(
      writes.join("")
    )!
    expect(writes).toHaveLength(1)
    const base = `http://127.0.0.1:${metrics}`
    expect((await fetch(`${base}/readyz`)).status).toBe(200)
    const echoed = await Effect.runPromise(Client.roundTrip({ port: Number(port) }, [Buffer.from("in process")]))
    expect(Buffer.from(echoed).toString()).toBe("in process")
    expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/^echo_connections_accepted_total [1-9]/m)
    process.emit("SIGTERM", "SIGTERM")
    // Not ready from the signal on, while the port still accepts for the drain delay.
    expect((await fetch(`${base}/readyz`)).status).toBe(503)
    expect(Exit.isSuccess(await Effect.runPromise(Fiber.await(fiber)))).toBe(true)
    const messages = log.records.map((r) => r.message)
    const at = (text: string) => messages.findIndex((m) => m.startsWith(text))
    expect(log.records.find((r) => r.message.startsWith("listening on"))).toMatchObject({
      message: `listening on 127.0.0.1:${port}`,
      annotations: { address: `127.0.0.1:${port}` }
    })
    expect(log.records.find((r) => r.message.startsWith("metrics on"))).toMatchObject({
      message: `metrics on http://127.0.0.1:${metrics}/metrics, probes on /healthz and /readyz`,
      annotations: { metrics: `http://127.0.0.1:${metrics}/metrics` }
    })
    // On loopback, with the inspector closed, and limits that hold what it asks: nothing to warn of.
    expect(log.records.filter((r) => r.level === "WARN")).toEqual([])
    // The report after the address, the metrics after the report.
    expect(at("backlog requested")).toBeGreaterThan(at("listening on"))
    expect(at(`metrics on http://127.0.0.1:${metrics}/metrics`)).toBeGreaterThan(at("open files limit"))
    expect(at("SIGTERM: shutting down gracefully")).toBeGreaterThan(at("metrics on"))
    expect(messages.at(-1)).toBe("stopped: the port is closed, and no connection is left open")
    expect(process.listenerCount("SIGTERM")).toBe(0)
  })

  it("says at start what it was asked that matters: the inspector allowed, the PROXY protocol", async () => {
    stdout()
    const usr1 = process.listenerCount("SIGUSR1")
    const log = capturing()
    const fiber = Effect.runFork(
      log.around(Cli.program("test")(["node", "bin.js", "serve", "--inspect-on-sigusr1", "--proxy-protocol"]))
        .pipe(Effect.provide(platform))
    )
    await until(() => log.records.some((r) => r.message.startsWith("PROXY protocol on")))
    // Node's own SIGUSR1 behaviour, asked for: no listener of serve's in its way.
    expect(process.listenerCount("SIGUSR1")).toBe(usr1)
    process.emit("SIGTERM", "SIGTERM")
    expect(Exit.isSuccess(await Effect.runPromise(Fiber.await(fiber)))).toBe(true)
    expect(log.records.filter((r) => r.level === "WARN").map((r) => r.message)).toEqual([
      "SIGUSR1 opens Node's inspector on 127.0.0.1:9229 (--inspect-on-sigusr1): any local user who can signal " +
      "this process or reach that port can then run code as its user"
    ])
    expect(log.records.map((r) => r.message)).toContain(
      "PROXY protocol on: a header (v1 or v2) from 127.0.0.0/8 within 5s, or the connection is refused"
    )
  })

  it("without --metrics-port, stdout gets the address alone", async () => {
    const writes = stdout()
    const fiber = Effect.runFork(Cli.program("test")(["node", "bin.js", "serve"]).pipe(Effect.provide(platform)))
    await until(() => writes.length > 0)
    expect(writes.join("")).toMatch(/^listening on 127\.0\.0\.1:\d+\n$/)
    process.emit("SIGINT", "SIGINT")
    expect(Exit.isSuccess(await Effect.runPromise(Fiber.await(fiber)))).toBe(true)
  })

  it("a port in use, or a metrics port in use, fails before anything is announced, naming where it came from", async () => {
    const writes = stdout()
    const taken = net.createServer()
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r))
    const port = String((taken.address() as net.AddressInfo).port)
    try {
      const failure = (args: Array<string>, env: Record<string, string> = {}) =>
        Effect.runPromise(
          Cli.program("test")(["node", "bin.js", "serve", ...args]).pipe(
            Effect.provide(platform),
            withEnv(env),
            Effect.flip
          )
        )
      expect((await failure(["--port", port])).text).toBe(
        `effect-tcp-echo: 127.0.0.1:${port} is already in use (address from --port)\n`
      )
      expect((await failure([], { ECHO_HOST: "127.0.0.1", ECHO_PORT: port })).message).toBe(
        `127.0.0.1:${port} is already in use (address from ECHO_HOST and ECHO_PORT)`
      )
      expect((await failure(["--metrics-port", port])).message).toBe(
        `cannot serve metrics: 127.0.0.1:${port} is already in use (port from --metrics-port)`
      )
      expect((await failure(["--metrics-port", port, "--metrics-host", "127.0.0.1"])).message).toBe(
        `cannot serve metrics: 127.0.0.1:${port} is already in use (address from --metrics-host and --metrics-port)`
      )
      expect(writes).toEqual([])
    } finally {
      taken.close()
    }
  })
})

describe("the log, on stderr", () => {
  /** What one record looks like in `format`, and whether the default logger wrote it too. */
  const written = (format: Output.LogFormat, nested = false) => {
    const errors: Array<string> = []
    const logs: Array<string> = []
    vi.spyOn(console, "error").mockImplementation((...args: Array<unknown>) => {
      errors.push(args.map(String).join(" "))
    })
    vi.spyOn(console, "log").mockImplementation((...args: Array<unknown>) => {
      logs.push(args.map(String).join(" "))
    })
    const layer = Output.loggingLayer(format, "Info")
    const record = Effect.logInfo("one record")
    Effect.runSync(
      nested
        ? Effect.provide(record, layer).pipe(Effect.provide(Output.loggingLayer("pretty", "Info")))
        : Effect.provide(record, layer)
    )
    vi.restoreAllMocks()
    return { errors, logs }
  }

  it("one record, one line on stderr, in the format asked; nothing on stdout", () => {
    const previous = process.env.NO_COLOR
    delete process.env.NO_COLOR
    try {
      const json = written("json")
      // Effect's JSON logger names the level's field `logLevel` on Effect 3, `level` on Effect 4.
      expect(JSON.parse(json.errors[0]!)).toMatchObject({
        message: "one record",
        [line === 3 ? "logLevel" : "level"]: "INFO"
      })
      expect(written("logfmt").errors[0]).toMatch(/^timestamp=\S+ level=INFO fiber=\S+ message="one record"$/)
      const pretty = written("pretty")
      expect(pretty.errors.join("\n")).toMatch(/INFO .*one record/)
      // stderr is no terminal here: no colours.
      expect(pretty.errors.join("\n")).not.toContain("\u001b[")
      for (const format of ["json", "logfmt", "pretty"] as const) {
        const { errors, logs } = written(format)
        expect(errors.filter((e) => e.includes("one record")), format).toHaveLength(1)
        expect(logs, format).toEqual([])
      }
      // One set inside another: the inner one only, once.
      const nested = written("json", true)
      expect(nested.errors).toHaveLength(1)
      expect(JSON.parse(nested.errors[0]!).message).toBe("one record")
    } finally {
      if (previous !== undefined) process.env.NO_COLOR = previous
    }
  })
})

describe("the signal guard", () => {
  /** The guard in a scope of its own; `process.exit` recorded, not performed. */
  const guarded = (inspector = false) =>
    Effect.gen(function*() {
      const exits: Array<number | undefined> = []
      vi.spyOn(process, "exit").mockImplementation(
        ((code?: number) => {
          exits.push(code)
        }) as typeof process.exit
      )
      const scope = yield* Scope.make()
      const log = capturing(true)
      const guard = yield* log.around(extendScope(Signals.guard({ inspector }), scope))
      return { exits, guard, log, close: Scope.close(scope, Exit.void) }
    })

  it.live("the first of SIGINT, SIGTERM, SIGHUP starts the shutdown; the next stops at once, with 128 + its number", () =>
    Effect.gen(function*() {
      for (
        const [first, second, code] of [["SIGINT", "SIGTERM", 143], ["SIGHUP", "SIGINT", 130], [
          "SIGTERM",
          "SIGHUP",
          129
        ]] as const
      ) {
        const { close, exits, guard, log } = yield* guarded()
        expect(yield* guard.received).toBe(false)
        process.emit(first, first)
        yield* guard.stopped
        expect(yield* guard.received).toBe(true)
        expect(exits).toEqual([])
        process.emit(second, second)
        expect(exits).toEqual([code])
        expect(log.records.map((r) => [r.level, r.message])).toEqual([
          ["INFO", `${first}: shutting down gracefully (a second signal stops at once)`],
          [
            "ERROR",
            `${second} during the shutdown ${first} began: stopping at once with exit status ${code}; every ` +
            "connection still open is reset, so that no answer cut off passes for a complete one"
          ]
        ])
        yield* close
      }
    }))

  it.live("a shutdown begun otherwise (a worker's primary asked) makes the first signal stop at once", () =>
    Effect.gen(function*() {
      const { close, exits, guard, log } = yield* guarded()
      yield* guard.begin("its primary asked for")
      expect(yield* guard.received).toBe(true)
      // Begun already: a second reason changes nothing.
      yield* guard.begin("something else")
      process.emit("SIGTERM", "SIGTERM")
      expect(exits).toEqual([143])
      expect(log.records.map((r) => r.message)).toEqual([
        "SIGTERM during the shutdown its primary asked for: stopping at once with exit status 143; every " +
        "connection still open is reset, so that no answer cut off passes for a complete one"
      ])
      yield* close
    }))

  it.live("SIGQUIT stops at once with 131; SIGUSR2 and SIGUSR1 are logged and ignored, SIGUSR1 unless allowed", () =>
    Effect.gen(function*() {
      const { close, exits, guard, log } = yield* guarded()
      process.emit("SIGUSR2", "SIGUSR2")
      process.emit("SIGUSR1", "SIGUSR1")
      expect(exits).toEqual([])
      expect(yield* guard.received).toBe(false)
      process.emit("SIGQUIT", "SIGQUIT")
      expect(exits).toEqual([131])
      expect(log.records.map((r) => [r.level, r.message])).toEqual([
        ["WARN", "SIGUSR2 ignored: it means nothing to this server"],
        ["WARN", "SIGUSR1 ignored: Node's inspector stays closed (serve --inspect-on-sigusr1 allows it)"],
        [
          "ERROR",
          "SIGQUIT: stopping at once with exit status 131; every connection still open is reset, so that no " +
          "answer cut off passes for a complete one"
        ]
      ])
      yield* close
      const allowed = yield* guarded(true)
      const usr1 = process.listenerCount("SIGUSR1")
      process.emit("SIGUSR2", "SIGUSR2")
      expect(allowed.log.records.map((r) => r.message)).toEqual(["SIGUSR2 ignored: it means nothing to this server"])
      yield* allowed.close
      // Its own listener for SIGUSR1 only when the inspector is not allowed.
      expect(process.listenerCount("SIGUSR1")).toBe(usr1)
    }))

  it.live("released with its scope: no listener of its own is left", () =>
    Effect.gen(function*() {
      const signals = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const
      const before = signals.map((s) => process.listenerCount(s))
      const { close } = yield* guarded()
      expect(signals.map((s) => process.listenerCount(s))).toEqual(before.map((n) => n + 1))
      yield* close
      expect(signals.map((s) => process.listenerCount(s))).toEqual(before)
    }))

  it("the forced exit's status is 128 + the signal's number", () => {
    expect([Signals.forcedExitCode("SIGINT"), Signals.forcedExitCode("SIGTERM"), Signals.forcedExitCode("SIGHUP")])
      .toEqual([130, 143, 129])
  })
})
