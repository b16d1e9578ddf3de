/**
 * What `serve` reads of its machine before it listens, in this process with a file system of the
 * test's making: the limits read one file at a time, the connection limits fitted to the
 * open-files limit (or to an assumed one when it cannot be read), and what is said about them.
 */
import { FileSystem } from "#line/platform"
import { systemError } from "#test-line/fileSystem"
import { capturing } from "#test-line/logging"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import type { Server } from "../src/index.js"
import { KernelLimits } from "../src/index.js"
import * as Checked from "../src/internal/checked.js"
import * as Host from "../src/internal/cli/host.js"

const limitsFile = [
  "Limit                     Soft Limit           Hard Limit           Units     ",
  "Max open files            256                  4096                 files     "
].join("\n")

/**
 * A file system where `files` exist (and `exists` says so), `/proc/self/fd` lists `fds` entries,
 * and reading any other path fails with `reason`. Counts the reads in flight at once.
 */
const fakeFs = (
  files: Record<string, string | "unreadable">,
  options: {
    readonly fds?: number
    readonly reason?: "NotFound" | "PermissionDenied"
    /** `exists` fails instead of answering. */
    readonly existsFails?: boolean
  } = {}
) => {
  const reads = { now: 0, most: 0 }
  const fail = (method: string, path: string) =>
    systemError({ reason: options.reason ?? "NotFound", module: "FileSystem", method, pathOrDescriptor: path })
  const fs = FileSystem.layerNoop({
    readFileString: (path) =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          reads.now++
          reads.most = Math.max(reads.most, reads.now)
        }),
        // A read takes a while (it waits for a promise, as Node's reads do): others started
        // meanwhile would be in flight with it.
        () =>
          Effect.andThen(
            Effect.promise(() => Promise.resolve()),
            Effect.suspend(() => {
              const text = files[path]
              return text === undefined || text === "unreadable"
                ? Effect.fail(fail("readFileString", path))
                : Effect.succeed(text)
            })
          ),
        () => Effect.sync(() => reads.now--)
      ),
    readDirectory: (path) =>
      path === "/proc/self/fd" && options.fds !== undefined
        ? Effect.succeed(Array.from({ length: options.fds }, (_, i) => String(i)))
        : Effect.fail(fail("readDirectory", path)),
    exists: (path) => options.existsFails === true ? Effect.fail(fail("exists", path)) : Effect.succeed(path in files)
  })
  return { reads, layer: Layer.provideMerge(KernelLimits.layer, fs) }
}

const read = (fs: ReturnType<typeof fakeFs>) => Host.read.pipe(Effect.provide(fs.layer))

describe("what serve reads before it listens", () => {
  it.effect("the limits are read one file at a time: a low open-files limit has no descriptors to spare", () =>
    Effect.gen(function*() {
      const fs = fakeFs({ "/proc/self/limits": limitsFile, "/proc/sys/net/core/somaxconn": "4096\n" }, { fds: 20 })
      const host = yield* read(fs)
      expect(fs.reads.most).toBe(1)
      expect(host).toMatchObject({ assumed: false, inUse: 20, limits: { somaxconn: 4096 } })
      expect(host.limits.openFiles).toEqual({ soft: 256, hard: 4096 })
    }))

  it.effect("an open-files limit that exists and cannot be read is assumed, and the connections fitted to it", () =>
    Effect.gen(function*() {
      const host = yield* read(fakeFs({ "/proc/self/limits": "unreadable" }, { fds: 20, reason: "PermissionDenied" }))
      expect(host.assumed).toBe(true)
      expect(host.limits.openFiles).toEqual({ soft: Host.assumedOpenFiles, hard: Host.assumedOpenFiles })
      const { budget, options } = Host.fitToDescriptors({}, host.limits, host.inUse)
      expect(budget).toBe(Host.assumedOpenFiles - 20 - 32)
      expect(options.maxConnections! + options.maxPending!).toBe(budget)
      const log = capturing(true)
      yield* log.around(Host.report(host, {}, options))
      const said = log.records.filter((r) => r.message.includes("open files limit"))
      expect(said).toEqual([expect.objectContaining({
        level: "WARN",
        message:
          `open files limit unknown (/proc/self/limits could not be read), taken to be ${Host.assumedOpenFiles}: ` +
          `at most ${budget} of 11000 connections (served and waiting) will be held, the rest dropped`
      })])
      // Asked for fewer than it holds: said too.
      const few = { maxConnections: 10, maxPending: 5 }
      const fitted = Host.fitToDescriptors(few, host.limits, host.inUse).options
      expect(fitted).toEqual(few)
      const again = capturing(true)
      yield* again.around(Host.report(host, few, fitted))
      expect(again.records.filter((r) => r.message.includes("open files limit")).map((r) => r.message)).toEqual([
        `open files limit unknown (/proc/self/limits could not be read), taken to be ${Host.assumedOpenFiles}: ` +
        "enough for the 15 connections (served and waiting) asked"
      ])
    }))

  it.effect("without /proc (not Linux) nothing is assumed, nothing fitted, nothing said about it", () =>
    Effect.gen(function*() {
      const host = yield* read(fakeFs({}))
      expect(host).toStrictEqual({ probed: Checked.valid({}), limits: {}, assumed: false, inUse: 0 })
      // Nor when even the file's existence cannot be asked.
      expect((yield* read(fakeFs({}, { existsFails: true }))).assumed).toBe(false)
      expect(Host.fitToDescriptors({}, host.limits, host.inUse)).toEqual({ options: {}, budget: undefined })
      const log = capturing(true)
      yield* log.around(Host.report(host, {}, {}))
      expect(log.records.some((r) => r.message.includes("open files"))).toBe(false)
    }))

  it.effect("a malformed limits file is reported, and the open-files limit it held assumed", () =>
    Effect.gen(function*() {
      const host = yield* read(fakeFs({ "/proc/self/limits": "Max open files  many  1024  files\n" }))
      expect(host.probed._tag).toBe("Invalid")
      expect(host.assumed).toBe(true)
      const log = capturing(true)
      yield* log.around(Host.report(host, {}, {}))
      expect(log.records.map((r) => r.level)).toContain("WARN")
      expect(log.records.some((r) => r.message.includes("/proc/self/limits holds"))).toBe(true)
    }))
})

describe("the connection limits, fitted", () => {
  it("the metrics listener's connections are kept out of the echo server's descriptors", () => {
    const limits = { openFiles: { soft: 1024, hard: 1024 } }
    const without = Host.fitToDescriptors({}, limits, 20)
    const withMetrics = Host.fitToDescriptors({}, limits, 20, 16)
    expect(without.budget).toBe(1024 - 20 - 32)
    expect(withMetrics.budget).toBe(1024 - 20 - 32 - 16)
    expect(withMetrics.options.maxConnections! + withMetrics.options.maxPending!).toBe(withMetrics.budget)
  })

  it("served connections first, then the waiting ones, at least one; an unlimited limit fits anything", () => {
    const limits = { openFiles: { soft: 100, hard: 100 } }
    expect(Host.fitToDescriptors({ maxConnections: 10, maxPending: 90 }, limits, 20).options).toEqual({
      maxConnections: 10,
      maxPending: 38
    })
    expect(Host.fitToDescriptors({}, { openFiles: { soft: 40, hard: 40 } }, 20)).toEqual({
      options: { maxConnections: 1, maxPending: 0 },
      budget: 1
    })
    const fits = { maxConnections: 10, maxPending: 38 }
    expect(Host.fitToDescriptors(fits, limits, 20)).toEqual({ options: fits, budget: 48 })
    const unlimited = { openFiles: { soft: Number.POSITIVE_INFINITY, hard: Number.POSITIVE_INFINITY } }
    expect(Host.fitToDescriptors({}, unlimited, 20)).toEqual({ options: {}, budget: undefined })
  })

  it("the report says whether the limit holds what the flags ask", () =>
    Effect.gen(function*() {
      const host: Host.Host = {
        probed: Checked.valid({}),
        limits: { openFiles: { soft: 100, hard: Number.POSITIVE_INFINITY } },
        assumed: false,
        inUse: 20
      }
      const asked: Server.Options = { maxConnections: 10, maxPending: 90 }
      const log = capturing(true)
      yield* log.around(Host.report(host, asked, Host.fitToDescriptors(asked, host.limits, host.inUse).options))
      yield* log.around(Host.report(host, { maxConnections: 1, maxPending: 1 }, { maxConnections: 1, maxPending: 1 }))
      expect(log.records.filter((r) => r.message.startsWith("open files")).map((r) => [r.level, r.message])).toEqual([
        [
          "WARN",
          "open files limit 100 (hard unlimited) for 100 connections (served and waiting): too low, at most 48 will " +
          "be held and the rest dropped; raise it with ulimit -n or lower --max-connections"
        ],
        ["INFO", "open files limit 100 (hard unlimited) for 2 connections (served and waiting)"]
      ])
    }).pipe(Effect.runPromise))
})

describe("exposure", () => {
  it("an address outside 127.0.0.0/8 is named as reachable from other hosts", () => {
    expect(Host.exposure("127.0.0.1", "127.0.0.1:7")).toBeUndefined()
    expect(Host.exposure("127.3.2.1", "127.3.2.1:7")).toBeUndefined()
    expect(Host.exposure("0.0.0.0", "0.0.0.0:7")).toBe(
      "listening on 0.0.0.0:7: every interface of this machine, so any host that can reach it can use this echo " +
        "server; --host 127.0.0.1 (the default) keeps it to this machine"
    )
    expect(Host.exposure("192.0.2.1", "192.0.2.1:7")).toBe(
      "listening on 192.0.2.1:7: an address other hosts can reach, so they can use this echo server; --host " +
        "127.0.0.1 (the default) keeps it to this machine"
    )
  })
})

describe("keep-alive", () => {
  const limits = { tcpKeepaliveTime: 600 }

  it("on without a delay, it takes the kernel's idle time: Node's default of 0 would make Linux refuse it", () => {
    expect(Host.withKeepAliveTime({ keepAlive: true }, limits)).toEqual({
      keepAlive: true,
      keepAliveInitialDelay: Duration.seconds(600)
    })
    // A delay given, keep-alive off, or no kernel value: as it is.
    for (const options of [{ keepAlive: true, keepAliveInitialDelay: Duration.seconds(5) }, { keepAlive: false }, {}]) {
      expect(Host.withKeepAliveTime(options, limits)).toBe(options)
    }
    const on = { keepAlive: true }
    expect(Host.withKeepAliveTime(on, {})).toBe(on)
  })

  it("the report says when the first probe comes, and that libuv sets the rest", () =>
    Effect.gen(function*() {
      const host: Host.Host = { probed: Checked.valid(limits), limits, assumed: false, inUse: 0 }
      const log = capturing(true)
      yield* log.around(Host.report(host, { keepAlive: true }, Host.withKeepAliveTime({ keepAlive: true }, limits)))
      yield* log.around(
        Host.report(host, { keepAlive: true, keepAliveInitialDelay: "5 seconds" }, {
          keepAlive: true,
          keepAliveInitialDelay: "5 seconds"
        })
      )
      yield* log.around(Host.report(host, { keepAlive: true }, { keepAlive: true }))
      yield* log.around(Host.report(host, {}, { keepAlive: false }))
      const said = log.records.filter((r) => r.message.startsWith("keep-alive on")).map((r) => r.message)
      const rest =
        "then every 1s; a peer that answers none of 10 probes is closed (libuv's TCP_KEEPINTVL and TCP_KEEPCNT)"
      expect(said).toEqual([
        `keep-alive on: first probe after 600s idle (net.ipv4.tcp_keepalive_time), ${rest}`,
        `keep-alive on: first probe after 5s idle, ${rest}`,
        `keep-alive on: first probe after the kernel's idle time, ${rest}`
      ])
      // The backlog first, with its numbers as annotations.
      expect(log.records[0]).toMatchObject({
        message: "backlog requested 511, effective 511",
        annotations: { backlogRequested: 511, backlogEffective: 511 }
      })
    }).pipe(Effect.runPromise))
})
