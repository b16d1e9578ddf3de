/**
 * The pure decisions under the lifecycle, field by field: the verdict on every way a connection
 * can end (outcome.ts), whether a record passes the minimum log level (level.ts, and Effect's
 * levels as the project's: log.ts), the rules options are checked by (options.ts), and how a
 * socket is closed (socket.ts). The lifecycle tests show their effects on real sockets; these pin each
 * decision down, so that a change to one is seen here first.
 */
import { capturing } from "#test-line/logging"
import { allLogLevels, bothCauses, interruption, thenCause, withMinimumLogLevel } from "#test-line/serving"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect } from "effect"
import * as net from "node:net"
import { Connection, Listener, Server } from "../src/index.js"
import * as Checked from "../src/internal/checked.js"
import * as Driven from "../src/internal/connection.js"
import * as Level from "../src/internal/level.js"
import * as Log from "../src/internal/log.js"
import * as Options from "../src/internal/options.js"
import * as Outcome from "../src/internal/outcome.js"
import * as Socket from "../src/internal/socket.js"
import type * as Transport from "../src/internal/transport.js"

/** A connection on a socket that never connects: enough to raise errors that are its own. */
const own = () => {
  const connection = Driven.drive(new net.Socket() as unknown as Transport.Socket)
  const raise = (fields: ConstructorParameters<typeof Connection.ConnectionError>[0]): Connection.ConnectionError =>
    (connection as unknown as { error: typeof raise }).error(fields)
  return { connection, raise }
}

class LineTooLong extends Error {
  readonly [Server.PeerFault] = "LineTooLong"
  constructor() {
    super("line too long")
  }
}

describe("the verdict on a connection's end (outcome.ts)", () => {
  it("a normal end: nothing counted or logged, completed", () => {
    expect(Outcome.normal).toEqual({
      reason: undefined,
      dropped: undefined,
      peerReset: false,
      level: "None",
      message: "",
      cause: undefined,
      release: "complete"
    })
  })

  it("cut off by the server: reset, the idle timeout logged at info, the deadline not on its own", () => {
    expect(Outcome.cut("Timeout", "1.2.3.4:5")).toEqual({
      reason: "Timeout",
      dropped: undefined,
      peerReset: false,
      level: "Info",
      message: "1.2.3.4:5 timed out (idle)",
      cause: undefined,
      release: "reset"
    })
    expect(Outcome.cut("ShutdownDeadline", "1.2.3.4:5")).toEqual({
      reason: "ShutdownDeadline",
      dropped: undefined,
      peerReset: false,
      level: "None",
      message: "",
      cause: undefined,
      release: "reset"
    })
  })

  it("refused before it was served: counted as dropped, a warning, reset", () => {
    expect(Outcome.refused("proxy_timeout", "1.2.3.4:5", "too slow")).toEqual({
      reason: undefined,
      dropped: "proxy_timeout",
      peerReset: false,
      level: "Warning",
      message: "refused connection from 1.2.3.4:5: too slow",
      cause: undefined,
      release: "reset"
    })
  })

  it("a defect wins over everything else in the cause, and is reset with the cause logged", () => {
    const { connection, raise } = own()
    const reset = raise({ reason: "Reset", peer: connection.peer })
    for (
      const cause of [
        Cause.die("bug"),
        bothCauses(Cause.fail(reset), Cause.die("bug")),
        thenCause(Cause.fail(new LineTooLong()), Cause.die("bug")),
        bothCauses(interruption, Cause.die("bug"))
      ]
    ) {
      expect(Outcome.classify(cause, connection)).toEqual({
        reason: "Defect",
        dropped: undefined,
        peerReset: false,
        level: "Error",
        message: "handler died",
        cause,
        release: "reset"
      })
    }
  })

  it("a failure of the handler's own, even beside a connection's error or a peer fault, is a HandlerError", () => {
    const { connection, raise } = own()
    const other = own()
    const byHand = new Connection.ConnectionError({ reason: "Reset", peer: connection.peer })
    for (
      const cause of [
        Cause.fail("nope"),
        Cause.fail(byHand),
        Cause.fail(other.raise({ reason: "Reset", peer: other.connection.peer })),
        bothCauses(Cause.fail(raise({ reason: "Reset", peer: connection.peer })), Cause.fail("nope")),
        bothCauses(Cause.fail(new LineTooLong()), Cause.fail("nope")),
        Cause.empty
      ]
    ) {
      expect(Outcome.classify(cause, connection)).toEqual({
        reason: "HandlerError",
        dropped: undefined,
        peerReset: false,
        level: "Error",
        message: "handler failed",
        cause,
        release: "reset"
      })
    }
  })

  it("a peer fault: under its own reason, at info, completed so that what was said arrives", () => {
    const { connection, raise } = own()
    const fault = new LineTooLong()
    const expected = {
      reason: "LineTooLong",
      dropped: undefined,
      peerReset: false,
      level: "Info",
      message: "line too long",
      cause: undefined,
      release: "complete"
    }
    expect(Outcome.classify(Cause.fail(fault), connection)).toEqual(expected)
    // Beside the connection's own error, the fault (the reason it ended) stands; the first of two.
    expect(
      Outcome.classify(bothCauses(Cause.fail(raise({ reason: "Reset", peer: "p" })), Cause.fail(fault)), connection)
    ).toEqual(expected)
    const second = { [Server.PeerFault]: "Other", toString: () => "other fault" }
    expect(Outcome.classify(thenCause(Cause.fail(fault), Cause.fail(second)), connection)).toEqual(expected)
    // Not an Error: its text is what it says of itself.
    expect(Outcome.classify(Cause.fail(second), connection)).toMatchObject({ reason: "Other", message: "other fault" })
  })

  it("a connection's own error: under its reason, at info (Unknown at warning, with its cause), closed", () => {
    const { connection, raise } = own()
    const reset = raise({ reason: "Reset", peer: "1.2.3.4:5" })
    expect(Outcome.classify(Cause.fail(reset), connection)).toEqual({
      reason: "Reset",
      dropped: undefined,
      peerReset: true,
      level: "Info",
      message: "1.2.3.4:5 reset the connection",
      cause: undefined,
      release: "close"
    })
    const pipe = raise({ reason: "BrokenPipe", peer: "1.2.3.4:5" })
    const timeout = raise({ reason: "Timeout", peer: "1.2.3.4:5" })
    // The first of two is the reason.
    expect(Outcome.classify(bothCauses(Cause.fail(pipe), Cause.fail(timeout)), connection)).toMatchObject({
      reason: "BrokenPipe",
      peerReset: false,
      level: "Info",
      release: "close"
    })
    const odd = raise({ reason: "Unknown", peer: "1.2.3.4:5", code: "EHOSTUNREACH" })
    const cause = Cause.fail(odd)
    expect(Outcome.classify(cause, connection)).toEqual({
      reason: "Unknown",
      dropped: undefined,
      peerReset: false,
      level: "Warning",
      message: "connection with 1.2.3.4:5 failed: EHOSTUNREACH",
      cause,
      release: "close"
    })
  })

  it("a connection's error says what happened, naming the peer and the kernel's code", () => {
    const error = (fields: Partial<ConstructorParameters<typeof Connection.ConnectionError>[0]>) =>
      new Connection.ConnectionError({ reason: "Unknown", peer: "1.2.3.4:5", ...fields }).message
    expect(error({ reason: "Reset" })).toBe("1.2.3.4:5 reset the connection")
    expect(error({ reason: "BrokenPipe" })).toBe("1.2.3.4:5 is gone: write on a closed connection")
    expect(error({ reason: "Timeout" })).toBe("1.2.3.4:5 timed out (idle)")
    expect(error({ reason: "Timeout", code: "ETIMEDOUT" })).toBe("1.2.3.4:5 timed out (ETIMEDOUT)")
    expect(error({ code: "EHOSTUNREACH" })).toBe("connection with 1.2.3.4:5 failed: EHOSTUNREACH")
    expect(error({ cause: "gone" })).toBe("connection with 1.2.3.4:5 failed: gone")
  })

  it("a listen error says what happened, naming the address", () => {
    const error = (fields: Partial<ConstructorParameters<typeof Listener.ListenError>[0]>) =>
      new Listener.ListenError({ reason: "Unknown", address: "127.0.0.1:80", ...fields }).message
    expect(error({ reason: "AddressInUse" })).toBe("127.0.0.1:80 is already in use")
    expect(error({ reason: "PermissionDenied" })).toBe(
      "permission denied to listen on 127.0.0.1:80 (ports below 1024 need privileges)"
    )
    expect(error({ reason: "AddressNotAvailable" })).toBe("127.0.0.1:80 is not an address of this machine")
    expect(error({ reason: "InvalidOption", option: "port", value: 70000, expected: "an integer from 0 to 65535" }))
      .toBe("invalid port: 70000 (expected an integer from 0 to 65535)")
    expect(error({ code: "EMFILE" })).toBe("cannot listen on 127.0.0.1:80: EMFILE")
    expect(error({ cause: "boom" })).toBe("cannot listen on 127.0.0.1:80: boom")
  })

  it("interruption alone: Interrupted, at info, reset", () => {
    const { connection } = own()
    expect(Outcome.classify(interruption, connection)).toEqual({
      reason: "Interrupted",
      dropped: undefined,
      peerReset: false,
      level: "Info",
      message: `handler for ${connection.peer} was interrupted`,
      cause: undefined,
      release: "reset"
    })
  })

  it("a peer fault names a reason of its own: empty, non-string or the server's own reasons are not one", () => {
    expect(Server.isPeerFault(new LineTooLong())).toBe(true)
    expect(Server.isPeerFault({ [Server.PeerFault]: "Reset" })).toBe(false)
    expect(Server.isPeerFault({ [Server.PeerFault]: "Defect" })).toBe(false)
    expect(Server.isPeerFault({ [Server.PeerFault]: "" })).toBe(false)
    expect(Server.isPeerFault({ [Server.PeerFault]: 1 })).toBe(false)
    expect(Server.isPeerFault({ reason: "LineTooLong" })).toBe(false)
    expect(Server.isPeerFault(null)).toBe(false)
    expect(Server.isPeerFault("LineTooLong")).toBe(false)
  })
})

describe("the minimum log level (level.ts), and Effect's levels as the project's (log.ts)", () => {
  it("a record passes a minimum at or below its level; nothing passes at None, and nothing at None is logged", () => {
    const levels: ReadonlyArray<Level.Level> = ["Debug", "Info", "Warning", "Error", "None"]
    const passing = (minimum: Level.Level) => levels.filter((level) => Level.enabled(level, minimum))
    expect(passing("Debug")).toEqual(["Debug", "Info", "Warning", "Error"])
    expect(passing("Info")).toEqual(["Info", "Warning", "Error"])
    expect(passing("Warning")).toEqual(["Warning", "Error"])
    expect(passing("Error")).toEqual(["Error"])
    expect(passing("None")).toEqual([])
  })

  it("each of Effect's levels is the project's level that lets the same records through", () => {
    expect(allLogLevels.map(([name, level]) => [name, Log.fromLogLevel(level)])).toEqual([
      ["All", "Debug"],
      ["Trace", "Debug"],
      ["Debug", "Debug"],
      ["Info", "Info"],
      ["Warning", "Warning"],
      ["Error", "Error"],
      ["Fatal", "None"],
      ["None", "None"]
    ])
  })

  it.effect("the minimum is the running fiber's; a record is logged at its level, with its cause when it has one", () =>
    Effect.gen(function*() {
      expect(yield* Log.minimumLevel.pipe(withMinimumLogLevel("Trace"))).toBe("Debug")
      expect(yield* Log.minimumLevel.pipe(withMinimumLogLevel("Warning"))).toBe("Warning")
      const log = capturing(true)
      yield* log.around(
        Effect.all([Log.logAt("Warning", "w"), Log.logAt("Error", "e", Cause.fail("boom"))]).pipe(
          withMinimumLogLevel("Debug")
        )
      )
      expect(log.records.map((r) => [r.level, r.message, r.cause.includes("boom")])).toEqual([
        ["WARN", "w", false],
        ["ERROR", "e", true]
      ])
    }))
})

describe("the rules options are checked by (options.ts)", () => {
  const left = <A>(checked: Checked.Checked<A, Options.Invalid>) =>
    checked._tag === "Invalid" ? checked.error : undefined

  it("integers: in range, whole, numbers; the message says the range", () => {
    expect(Options.integer("n", 1, 1)).toEqual(Checked.valid(1))
    expect(Options.integer("n", 2 ** 31 - 1, 1)).toEqual(Checked.valid(2 ** 31 - 1))
    expect(left(Options.integer("n", 2 ** 31, 1))).toEqual({
      option: "n",
      value: 2 ** 31,
      expected: "a positive integer below 2^31"
    })
    expect(left(Options.integer("n", 0, 1))?.expected).toBe("a positive integer below 2^31")
    expect(left(Options.integer("n", 1.5, 1))?.value).toBe(1.5)
    expect(left(Options.integer("n", "3", 1))?.value).toBe("3")
    expect(Options.integer("n", 0, 0)).toEqual(Checked.valid(0))
    expect(left(Options.integer("n", -1, 0))?.expected).toBe("an integer from 0 to 2^31 - 1")
    expect(Options.integer("n", 65535, 0, 65535)).toEqual(Checked.valid(65535))
    expect(left(Options.integer("n", 65536, 0, 65535))?.expected).toBe("an integer from 0 to 65535")
  })

  it("durations: what a timer can hold, never negative; zero only where allowed", () => {
    const max = Options.maxTimerMillis
    expect(max).toBe(2147483647)
    expect(Options.duration("d", "0 millis", "zero allowed")).toEqual(Checked.valid(Duration.zero))
    expect(Options.duration("d", 0, "zero allowed")).toEqual(Checked.valid(Duration.zero))
    expect(Options.duration("d", "1 millis", "positive")).toEqual(Checked.valid(Duration.millis(1)))
    expect(Options.duration("d", max, "positive")).toEqual(Checked.valid(Duration.millis(max)))
    const expected = "a duration from 1ms to 24d 20h 31m 23s 647ms, such as 500ms, 5s or 1m"
    for (const bad of ["0 millis", 0, max + 1, "-5 seconds", "  -1 millis", -1, Number.NaN, "forever", Infinity, {}]) {
      expect(left(Options.duration("d", bad, "positive")), String(bad)).toEqual({ option: "d", value: bad, expected })
    }
    // Refused, not read as zero, where zero is allowed too.
    for (const bad of ["-5 seconds", "  -1 millis", "\t-0 millis", -1]) {
      expect(Options.duration("d", bad, "zero allowed")._tag, String(bad)).toBe("Invalid")
    }
    expect(left(Options.duration("d", -1, "zero allowed"))?.expected).toBe(
      "a duration from 0ms to 24d 20h 31m 23s 647ms, such as 500ms, 5s or 1m"
    )
    expect(Options.duration("d", Duration.infinity, "zero allowed")._tag).toBe("Invalid")
  })

  it("the keepalive delay: whole seconds from 1 to 32767", () => {
    expect(Options.keepAliveDelay("k", "1 seconds")).toEqual(Checked.valid(Duration.seconds(1)))
    expect(Options.keepAliveDelay("k", "32767 seconds")).toEqual(Checked.valid(Duration.seconds(32767)))
    for (const bad of ["32768 seconds", "1500 millis", "999 millis", 0, "-1 seconds"]) {
      expect(left(Options.keepAliveDelay("k", bad)), String(bad)).toEqual({
        option: "k",
        value: bad,
        expected: "a whole number of seconds from 1s to 32767s (TCP_KEEPIDLE)"
      })
    }
  })

  it("hosts: IPv4 or localhost", () => {
    expect(Options.ipv4("h", "localhost")).toEqual(Checked.valid("127.0.0.1"))
    expect(Options.ipv4("h", "10.1.2.3")).toEqual(Checked.valid("10.1.2.3"))
    for (const bad of ["::1", "example.com", 7, "256.0.0.1"]) {
      expect(left(Options.ipv4("h", bad))).toEqual({
        option: "h",
        value: bad,
        expected: "an IPv4 address such as 127.0.0.1, or localhost"
      })
    }
  })

  it("a value is shown as people write it", () => {
    expect(Options.showValue(Number.NaN)).toBe("NaN")
    expect(Options.showValue(Infinity)).toBe("Infinity")
    expect(Options.showValue("5s")).toBe("\"5s\"")
    expect(Options.showValue(Duration.seconds(90))).toBe("1m 30s")
    expect(Options.showValue({ a: 1 })).toBe("{\"a\":1}")
    expect(Options.showValue(undefined)).toBe("undefined")
  })
})

describe("how a socket is closed (socket.ts)", () => {
  const fake = (state: { destroyed?: boolean; writableLength?: number; writableEnded?: boolean }) => {
    const calls: Array<string> = []
    const socket = {
      destroyed: false,
      writableLength: 0,
      writableEnded: false,
      ...state,
      destroy: () => calls.push("destroy"),
      resetAndDestroy: () => calls.push("reset")
    } as unknown as Transport.Socket
    return { calls, socket }
  }
  const closed = (how: Socket.How, state: Parameters<typeof fake>[0]) => {
    const { calls, socket } = fake(state)
    Socket.close(socket, how)
    return calls
  }

  it("a FIN only when nothing written is unsent; a reset when asked, unless our FIN is already out", () => {
    expect(closed("close", {})).toEqual(["destroy"])
    expect(closed("close", { writableLength: 1 })).toEqual(["reset"])
    expect(closed("close", { writableEnded: true, writableLength: 1 })).toEqual(["reset"])
    expect(closed("reset", {})).toEqual(["reset"])
    expect(closed("reset", { writableEnded: true })).toEqual(["destroy"])
    expect(closed("reset", { writableEnded: true, writableLength: 5 })).toEqual(["reset"])
    expect(closed("reset", { destroyed: true })).toEqual([])
    expect(closed("close", { destroyed: true, writableLength: 1 })).toEqual([])
  })
})
