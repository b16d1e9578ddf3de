/**
 * The command line as the binary reads it, in this process: one parser (internal/flags.ts) for
 * every flag and variable, usage errors that name the flag or variable at fault, switches and
 * their --no- form, and the help written from the same flags. (The binary as a user runs it, in
 * subprocesses: Cli.test.ts.)
 */
import { interrupted, withEnv } from "#test-line/commandLine"
import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it, vi } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Layer, Option } from "effect"
import * as os from "node:os"
import * as Cli from "../src/Cli.js"
import { KernelLimits } from "../src/index.js"
import * as Checked from "../src/internal/checked.js"
import * as Failure from "../src/internal/cli/failure.js"
import * as Probe from "../src/internal/cli/probe.js"
import * as ServeFlags from "../src/internal/cli/serveFlags.js"
import * as Flags from "../src/internal/flags.js"
import * as Options_ from "../src/internal/options.js"
import { expectUsage, usageError } from "./utils/usage.js"

describe("usage errors name the flag or the variable", () => {
  it("a metrics port equal to the echo port is a usage error", async () => {
    // Refused before anything binds: no port is taken.
    const port = 7007
    expectUsage(
      await usageError(["serve", "--port", String(port), "--metrics-port", String(port)]),
      "--metrics-port",
      "--port"
    )
  })

  it("a keep-alive delay TCP_KEEPIDLE cannot hold is refused", async () => {
    for (const delay of ["0s", "1500ms", "40000s"]) {
      expectUsage(
        await usageError(["serve", "--keep-alive-delay", delay]),
        `--keep-alive-delay ${JSON.stringify(delay)}`,
        "1s to 32767s"
      )
    }
  })

  it("integers: decimal only, in range", async () => {
    for (const value of ["abc", "0x50", "1e3", "80.0", "", "70000", "-1"]) {
      expectUsage(
        await usageError(["serve", "--port", value]),
        `invalid --port ${JSON.stringify(value)}`,
        "an integer from 0 to 65535"
      )
    }
    expectUsage(await usageError(["serve", "--backlog", "99999999999"]), "--backlog", "an integer from 1 to 2147483647")
    expectUsage(await usageError(["serve"], { ECHO_PORT: "0x50" }), "invalid ECHO_PORT \"0x50\"")
    expectUsage(await usageError(["serve"], { ECHO_MAX_CONNECTIONS: "0" }), "invalid ECHO_MAX_CONNECTIONS \"0\"")
  })

  it("durations: readable, never negative, never more than a timer holds (naming the maximum)", async () => {
    expectUsage(
      await usageError(["serve", "--idle-timeout", "0s"]),
      "invalid --idle-timeout \"0s\"",
      "from 1ms to 24d 20h 31m 23s 647ms"
    )
    expectUsage(await usageError(["serve", "--idle-timeout", "1000h"]), "--idle-timeout", "24d 20h 31m 23s 647ms")
    expectUsage(
      await usageError(["serve", "--shutdown-timeout", "597h"]),
      "--shutdown-timeout",
      "24d 20h 31m 23s 647ms"
    )
    expectUsage(await usageError(["serve", "--shutdown-timeout", "-5 seconds"]), "\"-5 seconds\"")
    expectUsage(await usageError(["serve", "--shutdown-timeout=-1s"]), "\"-1s\"")
    expectUsage(
      await usageError(["serve"], { ECHO_SHUTDOWN_TIMEOUT: "soon" }),
      "invalid ECHO_SHUTDOWN_TIMEOUT \"soon\""
    )
  })

  it("log levels and formats that are not known name the variable", async () => {
    for (const level of ["loud", "verbose"]) {
      expectUsage(
        await usageError(["serve"], { ECHO_LOG_LEVEL: level }),
        `invalid ECHO_LOG_LEVEL ${JSON.stringify(level)}`,
        "info"
      )
    }
    expectUsage(await usageError(["serve", "--log-level", "chatty"]), "invalid --log-level \"chatty\"")
    expectUsage(
      await usageError(["serve"], { ECHO_LOG_FORMAT: "xml" }),
      "invalid ECHO_LOG_FORMAT \"xml\"",
      "pretty, json, logfmt"
    )
    expectUsage(await usageError(["serve"], { ECHO_NO_DELAY: "sure" }), "invalid ECHO_NO_DELAY \"sure\"")
  })

  it("a host that is not IPv4 names the flag", async () => {
    expectUsage(await usageError(["serve", "--host", "::1"]), "invalid --host \"::1\"", "IPv4")
  })

  it("the command line itself: unknown, repeated or incomplete flags, stray arguments", async () => {
    expectUsage(await usageError(["serve", "--bogus"]), "unknown flag --bogus for serve")
    expectUsage(await usageError(["serve", "--port", "1", "--port", "2"]), "--port is given more than once")
    expectUsage(await usageError(["serve", "--port"]), "--port needs a value")
    expectUsage(await usageError(["serve", "--keep-alive=yes"]), "--keep-alive takes no value")
    expectUsage(await usageError(["serve", "8080"]), "unexpected argument \"8080\"")
    expectUsage(await usageError(["--port", "1", "serve"]), "--port goes after the command")
    expectUsage(await usageError(["bogus"]), "unknown command \"bogus\"")
    expectUsage(await usageError([]), "a command is needed")
  })

  it("a switch and its --no- form are one flag: given both, it is refused", async () => {
    expectUsage(
      await usageError(["serve", "--keep-alive", "--no-keep-alive"]),
      "--keep-alive and --no-keep-alive are both given: give one"
    )
    expectUsage(await usageError(["serve", "--no-keep-alive=yes"]), "--no-keep-alive takes no value")
    // A switch without a variable has nothing to turn off.
    expectUsage(await usageError(["probe", "--no-json"]), "unknown flag --no-json for probe")
  })

  it("the PROXY protocol flags are checked, naming the flag or variable", async () => {
    expectUsage(
      await usageError(["serve", "--proxy-protocol", "--trusted-proxies", "10.0.0.0/33"]),
      "invalid --trusted-proxies \"10.0.0.0/33\"",
      "IPv4 networks"
    )
    expectUsage(
      await usageError(["serve", "--proxy-protocol", "--trusted-proxies", "10.0.0.0/8,"]),
      "--trusted-proxies",
      "comma-separated"
    )
    expectUsage(
      await usageError(["serve", "--proxy-protocol"], { ECHO_TRUSTED_PROXIES: "" }),
      "invalid ECHO_TRUSTED_PROXIES \"\""
    )
    expectUsage(
      await usageError(["serve", "--proxy-protocol", "--proxy-header-timeout", "0s"]),
      "invalid --proxy-header-timeout \"0s\"",
      "from 1ms"
    )
    expectUsage(await usageError(["serve"], { ECHO_PROXY_PROTOCOL: "maybe" }), "invalid ECHO_PROXY_PROTOCOL \"maybe\"")
    expectUsage(await usageError(["serve", "--drain-delay", "-1s"]), "invalid --drain-delay \"-1s\"", "from 0ms")
    expectUsage(await usageError(["serve"], { ECHO_DRAIN_DELAY: "soon" }), "invalid ECHO_DRAIN_DELAY \"soon\"")
  })

  it("--workers takes a count from 1 to 1024, or auto; anything else names the flag or variable", async () => {
    for (const value of ["0", "-2", "two", "1.5", "2000"]) {
      expectUsage(
        await usageError(["serve", "--workers", value]),
        `invalid --workers ${JSON.stringify(value)}`,
        "an integer from 1 to 1024, or auto"
      )
    }
    expectUsage(await usageError(["serve"], { ECHO_WORKERS: "many" }), "invalid ECHO_WORKERS \"many\"", "or auto")
  })

  it("trusted proxies or a header timeout without --proxy-protocol is refused, not ignored", async () => {
    expectUsage(
      await usageError(["serve", "--trusted-proxies", "10.0.0.0/8"]),
      "--trusted-proxies takes effect only with --proxy-protocol"
    )
    expectUsage(
      await usageError(["serve", "--proxy-header-timeout", "1s"], { ECHO_TRUSTED_PROXIES: "10.0.0.0/8" }),
      "ECHO_TRUSTED_PROXIES and --proxy-header-timeout take effect only with --proxy-protocol"
    )
  })

  it("a backlog below 1 is refused, not reported as an effective 0", async () => {
    expectUsage(await usageError(["probe", "--backlog", "0"]), "invalid --backlog \"0\"", "an integer from 1")
    expectUsage(await usageError(["probe", "--backlog", "-3"]), "invalid --backlog \"-3\"")
  })
})

describe("the parser", () => {
  const flags = {
    port: Flags.value("port", "PORT", Flags.integer(0, 65535), "The port.", { variable: "T_PORT", default: "0" }),
    keepAlive: Flags.switch_("keep-alive", "Keep alive.", "T_KEEP_ALIVE"),
    json: Flags.switch_("json", "As JSON."),
    text: Flags.value("text", "TEXT", Flags.text, "Any text.")
  }
  const serve: Flags.Command<typeof flags> = {
    name: "serve",
    summary: "Serve.",
    usage: "serve [FLAGS]",
    description: ["Serves."],
    flags,
    sections: [{ title: "Notes", lines: ["  kept as written"] }]
  }
  const other: Flags.Command = {
    name: "go",
    summary: "Goes somewhere else entirely, by a long way round that takes more than one line to say.",
    usage: "go",
    description: [],
    flags: {}
  }
  const commands = [serve, other]
  const parse = (...args: Array<string>) => Flags.parse(commands, args)
  const usage = (...args: Array<string>) => {
    const parsed = parse(...args)
    return parsed._tag === "Usage" ? [parsed.message, parsed.command?.name] : parsed._tag
  }
  const given = (...args: Array<string>) => {
    const parsed = parse(...args)
    return parsed._tag === "Run" ? [parsed.command.name, Object.fromEntries(parsed.given)] : parsed._tag
  }

  it("one command, then its flags: each value checked as it is read, a switch true, its --no- form false", () => {
    expect(given("serve", "--port", "7", "--keep-alive", "--text=-x", "--json")).toEqual([
      "serve",
      { port: 7, "keep-alive": true, text: "-x", json: true }
    ])
    expect(given("serve", "--port=0", "--no-keep-alive")).toEqual(["serve", { port: 0, "keep-alive": false }])
    expect(given("serve", "--text", "--port")).toEqual(["serve", { text: "--port" }])
    expect(given("go")).toEqual(["go", {}])
  })

  it("--help anywhere wins, naming the command it was given with; --version next", () => {
    expect(parse("serve", "--port", "x", "--help")).toEqual({ _tag: "Help", command: serve })
    expect(parse("-h")).toEqual({ _tag: "Help", command: undefined })
    expect(parse("serve", "--version", "--bogus")).toEqual({ _tag: "Version" })
  })

  it("anything else is one usage error, naming the command whose help would say more", () => {
    expect(usage()).toEqual(["a command is needed: serve, go", undefined])
    expect(usage("--port", "1", "serve")).toEqual([
      "--port goes after the command, e.g. effect-tcp-echo serve --port",
      "serve"
    ])
    expect(usage("--no-keep-alive")).toEqual([
      "--no-keep-alive goes after the command, e.g. effect-tcp-echo serve --no-keep-alive",
      undefined
    ])
    expect(usage("--bogus=1")).toEqual(["unknown flag --bogus", undefined])
    expect(usage("bogus")).toEqual(["unknown command \"bogus\": the commands are serve, go", undefined])
    expect(usage("serve", "8080")).toEqual(["unexpected argument \"8080\": serve takes flags only", "serve"])
    expect(usage("serve", "--bogus")).toEqual(["unknown flag --bogus for serve", "serve"])
    expect(usage("serve", "--no-json")).toEqual(["unknown flag --no-json for serve", "serve"])
    expect(usage("serve", "--no-port")).toEqual(["unknown flag --no-port for serve", "serve"])
    expect(usage("serve", "--port", "1", "--port=2")).toEqual(["--port is given more than once: give it once", "serve"])
    expect(usage("serve", "--no-keep-alive", "--keep-alive")).toEqual([
      "--no-keep-alive and --keep-alive are both given: give one",
      "serve"
    ])
    expect(usage("serve", "--json=yes")).toEqual(["--json takes no value (it is a switch)", "serve"])
    expect(usage("serve", "--port")).toEqual(["--port needs a value (PORT)", "serve"])
    expect(usage("serve", "--port", "x")).toEqual([
      "invalid --port \"x\": expected an integer from 0 to 65535",
      "serve"
    ])
  })

  it("a flag wins over its variable; a variable is checked and named; a --no- switch turns its variable off", () =>
    Effect.gen(function*() {
      const resolve = (args: Array<string>, env: Record<string, string>) =>
        Effect.gen(function*() {
          const parsed = parse("serve", ...args)
          if (parsed._tag !== "Run") throw new Error(parsed._tag)
          return yield* Flags.resolve(flags, parsed.given)
        }).pipe(withEnv(env))
      const env = { T_PORT: "9", T_KEEP_ALIVE: "yes" }
      expect(yield* resolve([], env)).toEqual({
        values: { port: Option.some(9), keepAlive: Option.some(true), json: Option.none(), text: Option.none() },
        sources: { port: "T_PORT", keepAlive: "T_KEEP_ALIVE", json: undefined, text: undefined }
      })
      const flagged = yield* resolve(["--port", "8", "--no-keep-alive"], env)
      expect(flagged.values).toMatchObject({ port: Option.some(8), keepAlive: Option.some(false) })
      expect(flagged.sources).toMatchObject({ port: "--port", keepAlive: "--keep-alive" })
      expect(yield* Effect.flip(resolve([], { T_PORT: "0x50" }))).toEqual({
        source: "T_PORT",
        text: "0x50",
        expected: "an integer from 0 to 65535"
      })
      expect(yield* Effect.flip(resolve(["--port", "1"], { T_KEEP_ALIVE: "sure" }))).toMatchObject({
        source: "T_KEEP_ALIVE"
      })
    }).pipe(Effect.runPromise))

  it("values as people type them: decimal integers, IPv4, any-case choices, booleans, networks, durations", () => {
    expect(Flags.integer(1, 9)("-0")).toEqual(Checked.invalid("an integer from 1 to 9"))
    expect(Flags.integer(-9, 9)("-3")).toEqual(Checked.valid(-3))
    expect(Flags.integer(0, 9)("1e3")).toEqual(Checked.invalid("an integer from 0 to 9"))
    expect(Flags.choice(["a", "b"])("B")).toEqual(Checked.valid("b"))
    expect(Flags.choice(["a", "b"])("c")).toEqual(Checked.invalid("one of a, b"))
    for (const yes of ["true", "1", "YES", "on"]) expect(Flags.boolean(yes)).toEqual(Checked.valid(true))
    for (const no of ["false", "0", "No", "OFF"]) expect(Flags.boolean(no)).toEqual(Checked.valid(false))
    expect(Flags.boolean("maybe")).toEqual(Checked.invalid("true or false (also 1/0, yes/no, on/off)"))
    expect(Flags.networks(" 10.0.0.0/8 ,127.0.0.1")).toEqual(Checked.valid(["10.0.0.0/8", "127.0.0.1"]))
    for (const bad of ["10.0.0.0/8,", "", "10.0.0.0/33"]) expect(Flags.networks(bad)._tag).toBe("Invalid")
    expect(Flags.ipv4("localhost")).toEqual(Checked.valid("127.0.0.1"))
    expect(Flags.text("-")).toEqual(Checked.valid("-"))
    const duration = Flags.duration((value) => Options_.duration("", value, "positive"))
    expect(duration("1.55s")).toEqual(Checked.valid(Duration.millis(1550)))
    expect(duration(" 5s ")).toEqual(Checked.valid(Duration.seconds(5)))
    expect(duration("2 minutes")).toEqual(Checked.valid(Duration.minutes(2)))
    for (const bad of ["x5s", "5sx", "1.s", "-1s"]) expect(duration(bad)._tag, bad).toBe("Invalid")
  })

  it("--help is written from the flags: each with its default and its variable, a switch with its --no- form", () => {
    const text = Flags.help("prog", "1.2.3", "a summary.", commands, serve)
    expect(text).toBe([
      "Usage: prog serve [FLAGS]",
      "",
      "Serves.",
      "",
      "Flags:",
      "  --port PORT",
      "      The port. Default: 0. Variable: T_PORT.",
      "  --keep-alive, --no-keep-alive",
      "      Keep alive. Default: off. Variable: T_KEEP_ALIVE. --no-keep-alive turns it",
      "      off, over T_KEEP_ALIVE.",
      "  --json",
      "      As JSON. Default: off.",
      "  --text TEXT",
      "      Any text.",
      "  --help",
      "      Print this help.",
      "",
      "Notes:",
      "  kept as written",
      ""
    ].join("\n"))
    expect(Flags.help("prog", "1.2.3", "a summary.", commands, undefined)).toBe([
      "prog 1.2.3: a summary.",
      "",
      "Usage: prog COMMAND [FLAGS]",
      "",
      "Commands:",
      "  serve   Serve.",
      "  go      Goes somewhere else entirely, by a long way round that takes more than",
      "          one line to say.",
      "",
      "'prog COMMAND --help' lists a command's flags; 'prog --version' prints the",
      "version.",
      ""
    ].join("\n"))
  })

  it("wrapping keeps every word, within the columns asked (80 by default)", () => {
    const words = "one two three four five six seven eight nine ten ".repeat(12).trim()
    for (const columns of [80, 100]) {
      const wrapped = Flags.wrap(words, "    ", "  ", columns)
      expect(wrapped[0]!.startsWith("  one")).toBe(true)
      for (const line of wrapped) expect(line.length).toBeLessThanOrEqual(columns)
      // Full lines: the next word would not have fitted.
      for (let i = 0; i + 1 < wrapped.length; i++) {
        expect(wrapped[i]!.length + 1 + wrapped[i + 1]!.trim().split(" ")[0]!.length).toBeGreaterThan(columns)
      }
      expect(wrapped.join(" ").replace(/\s+/g, " ").trim()).toBe(words)
    }
    expect(Flags.wrap("x", "  ")).toEqual(["  x"])
    expect(Flags.wrap("  a   b ", "")).toEqual(["a b"])
  })
})

describe("probe's table", () => {
  it("a row per limit, its value and setting aligned; what it governs below; the SYN queue last", () => {
    const long = "word ".repeat(30).trim()
    const table = Probe.table([["a", "1", "sysctl a", "governs a"], ["bbb", "22 2", "ulimit -n", long]], `SYN ${long}`)
    const lines = table.split("\n")
    expect(lines.slice(0, 3)).toEqual(["a    1     sysctl a", "    governs a", "bbb  22 2  ulimit -n"])
    const blank = lines.indexOf("")
    for (const line of lines.slice(3, blank)) expect(line).toMatch(/^ {4}word/)
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(100)
    expect(lines[blank + 1]).toMatch(/^SYN word/)
    // The SYN queue's sentence wrapped, not indented.
    for (const line of lines.slice(blank + 2)) expect(line).toMatch(/^word/)
    expect(lines.length).toBeGreaterThan(blank + 2)
  })

  it("limits read as numbers, unlimited, pairs, or unavailable", () => {
    expect(Probe.formatLimit(5)).toBe("5")
    expect(Probe.formatLimit(Number.POSITIVE_INFINITY)).toBe("unlimited")
    expect(Probe.formatLimit({ soft: 1, hard: Number.POSITIVE_INFINITY })).toBe("soft=1 hard=unlimited")
    expect(Probe.formatLimit(undefined)).toBe("unavailable")
    expect(Probe.formatLimit(null)).toBe("unavailable")
  })
})

describe("serve's flags, checked together and made into the library's options", () => {
  const resolved = (args: Array<string>, env: Record<string, string> = {}) =>
    Effect.gen(function*() {
      const parsed = Flags.parse([ServeFlags.command], ["serve", ...args])
      if (parsed._tag !== "Run") throw new Error(parsed._tag === "Usage" ? parsed.message : parsed._tag)
      return yield* Flags.resolve(ServeFlags.command.flags, parsed.given)
    }).pipe(withEnv(env), Effect.runPromise)
  const refusal = async (args: Array<string>, env: Record<string, string> = {}) =>
    (await Effect.runPromise(Effect.flip(ServeFlags.checkTogether(await resolved(args, env))))).message

  it("log levels in any case, warn for warning; workers as a count or auto", async () => {
    expect((await resolved(["--log-level", "WARN"])).values.logLevel).toEqual(Option.some("warning"))
    expect((await resolved(["--log-level", "Debug"])).values.logLevel).toEqual(Option.some("debug"))
    expect((await resolved(["--workers", "AUTO"])).values.workers).toEqual(
      Option.some(Math.max(1, os.availableParallelism()))
    )
    expect((await resolved(["--workers", "3"])).values.workers).toEqual(Option.some(3))
  })

  it("what the flags cannot say together is refused, naming each flag or variable", async () => {
    expect(await refusal(["--port", "7007", "--metrics-port", "7007"])).toBe(
      "--metrics-port 7007 is also the echo port (--port): give each its own"
    )
    expect(await refusal(["--metrics-host", "127.0.0.2"])).toBe(
      "--metrics-host takes effect only with --metrics-port (or ECHO_METRICS_PORT): give it too, or drop it"
    )
    expect(await refusal(["--trusted-proxies", "10.0.0.0/8"])).toBe(
      "--trusted-proxies takes effect only with --proxy-protocol (or ECHO_PROXY_PROTOCOL): give it too, or drop it"
    )
    expect(await refusal(["--proxy-header-timeout", "1s"], { ECHO_TRUSTED_PROXIES: "10.0.0.0/8" })).toBe(
      "ECHO_TRUSTED_PROXIES and --proxy-header-timeout take effect only with --proxy-protocol (or " +
        "ECHO_PROXY_PROTOCOL): give it too, or drop them"
    )
    // Both on port 0: the kernel gives each its own.
    for (const args of [["--port", "0", "--metrics-port", "0"], ["--metrics-port", "7008"], ["--proxy-protocol"]]) {
      await Effect.runPromise(ServeFlags.checkTogether(await resolved(args)))
    }
    await Effect.runPromise(
      ServeFlags.checkTogether(await resolved(["--no-proxy-protocol"], { ECHO_PROXY_PROTOCOL: "true" }))
    )
    expect(await refusal(["--no-proxy-protocol", "--trusted-proxies", "10.0.0.0/8"], { ECHO_PROXY_PROTOCOL: "1" }))
      .toContain("--trusted-proxies takes effect only with --proxy-protocol")
  })

  it("the options are what was given, nothing more: defaults stay the library's", async () => {
    expect(ServeFlags.serverOptions((await resolved([])).values)).toEqual({})
    expect(ServeFlags.serverOptions((await resolved(["--port", "7", "--no-delay", "--idle-timeout", "5s"])).values))
      .toEqual({ port: 7, noDelay: true, idleTimeout: Duration.seconds(5) })
    expect(ServeFlags.serverOptions((await resolved(["--keep-alive-delay", "60s"])).values)).toEqual({
      keepAlive: true,
      keepAliveInitialDelay: Duration.seconds(60)
    })
    expect(ServeFlags.serverOptions((await resolved(["--no-keep-alive"], { ECHO_KEEP_ALIVE: "on" })).values)).toEqual(
      { keepAlive: false }
    )
    expect(ServeFlags.serverOptions((await resolved(["--proxy-protocol"])).values)).toEqual({ proxyProtocol: {} })
    expect(
      ServeFlags.serverOptions(
        (await resolved(["--proxy-protocol", "--trusted-proxies", "10.0.0.0/8", "--proxy-header-timeout", "2s"])).values
      )
    ).toEqual({ proxyProtocol: { trustedProxies: ["10.0.0.0/8"], headerTimeout: Duration.seconds(2) } })
    expect(ServeFlags.serverOptions((await resolved([], { ECHO_PROXY_PROTOCOL: "false" })).values)).toEqual({})
  })
})

describe("how the command line ends", () => {
  it("a usage error's text names the program and hints at the command's --help; a failure has no hint", () => {
    expect(usageOf("no", "serve").text).toBe("effect-tcp-echo: no\nTry 'effect-tcp-echo serve --help'.\n")
    expect(usageOf("no").text).toBe("effect-tcp-echo: no\nTry 'effect-tcp-echo --help'.\n")
    expect(usageOf("no")).not.toHaveProperty("command")
    expect(Failure.failed("gone")).toMatchObject({ reason: "Failed", message: "gone", text: "effect-tcp-echo: gone\n" })
  })

  it("the exit status: 0 done, 2 a usage error, 1 anything else, a bug included", () => {
    expect(Failure.exitStatus(Exit.void)).toBe(0)
    expect(Failure.exitStatus(Exit.fail(usageOf("x")))).toBe(2)
    expect(Failure.exitStatus(Exit.fail(Failure.failed("x")))).toBe(1)
    expect(Failure.exitStatus(Exit.die(new Error("bug")))).toBe(1)
  })

  it("a failure is reported as its text on stderr, a bug as one line naming it", async () => {
    const written: Array<string> = []
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk))
      return true
    })
    try {
      await Effect.runPromise(Failure.report(Cause.fail(usageOf("bad", "probe"))))
      await Effect.runPromise(Failure.report(Cause.die(new Error("oops"))))
      await Effect.runPromise(Failure.report(Cause.die("plain")))
      await Effect.runPromise(Failure.report(interrupted))
    } finally {
      vi.restoreAllMocks()
    }
    expect(written).toEqual([
      "effect-tcp-echo: bad\nTry 'effect-tcp-echo probe --help'.\n",
      "effect-tcp-echo: unexpected failure (a bug): oops\n",
      "effect-tcp-echo: unexpected failure (a bug): plain\n",
      "effect-tcp-echo: unexpected failure (a bug): interrupted\n"
    ])
  })

  it("--help, --version and a command, each answered on stdout by the program itself", async () => {
    const written: Array<string> = []
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array, done?: unknown) => {
      written.push(String(chunk))
      if (typeof done === "function") done()
      return true
    })
    const run = (...args: Array<string>) =>
      Cli.run("9.9.9")(["node", "bin.js", ...args]).pipe(
        Effect.provide(Layer.provideMerge(KernelLimits.layer, NodeFileSystem.layer)),
        Effect.runPromise
      )
    try {
      expect(await run("--help")).toBe(0)
      expect(await run("--version")).toBe(0)
      expect(await run("probe", "--json", "--backlog", "7")).toBe(0)
      expect(await run("client")).toBe(2)
    } finally {
      vi.restoreAllMocks()
    }
    expect(written[0]).toMatch(/^effect-tcp-echo 9\.9\.9: a resource-safe TCP \(IPv4\) echo server on Effect\.\n/)
    // simulate is listed beside the commands this parser reads, though its own process reads its flags.
    expect(written[0]).toMatch(/\n {2}simulate +Property-test a handler's shutdown/)
    expect(written[1]).toBe("effect-tcp-echo 9.9.9\n")
    expect(JSON.parse(written[2]!)).toMatchObject({ backlog: { requested: 7 } })
    expect(written).toHaveLength(3)
  })
})

const usageOf = Failure.usage
