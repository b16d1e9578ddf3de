import { FileSystem } from "#line/platform"
import { systemError } from "#test-line/fileSystem"
import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import { KernelLimits } from "../src/index.js"
import { hasPrlimit, serve } from "./utils/cli.js"

const files: Record<string, string> = {
  "/proc/sys/net/core/somaxconn": "4096\n",
  "/proc/sys/net/ipv4/tcp_max_syn_backlog": "2048\n",
  "/proc/sys/net/ipv4/tcp_syncookies": "1\n",
  "/proc/sys/net/ipv4/tcp_synack_retries": "5\n",
  "/proc/sys/net/ipv4/tcp_rmem": "4096\t131072\t6291456\n",
  "/proc/sys/net/ipv4/ip_local_port_range": "32768\t60999\n",
  "/proc/self/limits": [
    "Limit                     Soft Limit           Hard Limit           Units     ",
    "Max cpu time              unlimited            unlimited            seconds   ",
    "Max open files            1024                 unlimited            files     "
  ].join("\n")
}

/** A file system where `files` exist and every other path fails with `reason`. */
const fakeFs = (
  present: Record<string, string>,
  reason: "NotFound" | "PermissionDenied" = "NotFound"
) =>
  KernelLimits.layer.pipe(
    Layer.provide(FileSystem.layerNoop({
      readFileString: (path) =>
        path in present
          ? Effect.succeed(present[path]!)
          : Effect.fail(systemError({ reason, module: "FileSystem", method: "readFileString", pathOrDescriptor: path }))
    }))
  )

describe("KernelLimits", () => {
  it.effect("present files are parsed into their limits", () =>
    Effect.gen(function*() {
      const limits = yield* KernelLimits.read
      expect(limits.somaxconn).toBe(4096)
      expect(limits.tcpMaxSynBacklog).toBe(2048)
      expect(limits.tcpSyncookies).toBe(1)
      expect(limits.tcpSynackRetries).toBe(5)
      expect(limits.tcpRmem).toEqual({ min: 4096, default: 131072, max: 6291456 })
      expect(limits.ipLocalPortRange).toEqual({ low: 32768, high: 60999 })
      expect(limits.openFiles).toEqual({ soft: 1024, hard: Number.POSITIVE_INFINITY })
      // Files absent from the fake system are absent limits, not errors.
      expect(limits.tcpFinTimeout).toBeUndefined()
    }).pipe(Effect.provide(fakeFs(files))))

  it.effect("a system without /proc yields no limits and no error", () =>
    Effect.gen(function*() {
      expect(yield* KernelLimits.read).toEqual({})
    }).pipe(Effect.provide(fakeFs({}))))

  it.effect("unreadable files are absent limits, not errors", () =>
    Effect.gen(function*() {
      const limits = yield* KernelLimits.read
      expect(limits).toEqual({ somaxconn: 128 })
    }).pipe(Effect.provide(fakeFs({ "/proc/sys/net/core/somaxconn": "128" }, "PermissionDenied"))))

  it.effect("malformed contents fail with the path and the text", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(KernelLimits.read)
      expect(error._tag).toBe("KernelLimitsError")
      expect(error.reason).toBe("Malformed")
      expect(error.path).toBe("/proc/sys/net/core/somaxconn")
      expect(error.text).toBe("lots\n")
      expect(error.message).toContain("/proc/sys/net/core/somaxconn")
    }).pipe(Effect.provide(fakeFs({ ...files, "/proc/sys/net/core/somaxconn": "lots\n" }))))

  it.effect("a limits file without the open-files line leaves that limit absent", () =>
    Effect.gen(function*() {
      expect((yield* KernelLimits.read).openFiles).toBeUndefined()
    }).pipe(Effect.provide(fakeFs({ "/proc/self/limits": "Limit Soft Hard Units\n" }))))

  it.effect("a malformed open-files line is an error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(KernelLimits.read)
      expect(error.path).toBe("/proc/self/limits")
    }).pipe(Effect.provide(fakeFs({ "/proc/self/limits": "Max open files  many  1024  files\n" }))))

  it.effect.skipIf(!fs.existsSync("/proc/sys/net/core/somaxconn"))(
    "the real /proc of this machine gives every Linux limit",
    () =>
      Effect.gen(function*() {
        const limits = yield* KernelLimits.read
        const somaxconn = Number(fs.readFileSync("/proc/sys/net/core/somaxconn", "utf8"))
        expect(limits.somaxconn).toBe(somaxconn)
        expect(limits.tcpMaxSynBacklog).toBeGreaterThan(0)
        expect(limits.ipLocalPortRange!.low).toBeLessThan(limits.ipLocalPortRange!.high)
        expect(limits.openFiles!.soft).toBeLessThanOrEqual(limits.openFiles!.hard)
      }).pipe(Effect.provide(KernelLimits.layer), Effect.provide(NodeFileSystem.layer))
  )

  describe("effectiveBacklog", () => {
    it("clamps a request above somaxconn and names the limit", () => {
      expect(KernelLimits.effectiveBacklog(100_000, { somaxconn: 4096 })).toEqual({
        requested: 100_000,
        effective: 4096,
        clampedBy: "net.core.somaxconn"
      })
      expect(KernelLimits.formatBacklog(KernelLimits.effectiveBacklog(100_000, { somaxconn: 4096 }))).toBe(
        "requested 100000, effective 4096 (net.core.somaxconn)"
      )
    })
    it("keeps a request at or below somaxconn, and defaults to Node's 511", () => {
      expect(KernelLimits.effectiveBacklog(100, { somaxconn: 4096 })).toEqual({ requested: 100, effective: 100 })
      expect(KernelLimits.effectiveBacklog(undefined, { somaxconn: 4096 })).toEqual({ requested: 511, effective: 511 })
      expect(KernelLimits.effectiveBacklog(undefined, { somaxconn: 128 }).effective).toBe(128)
    })
    it("takes the request as is when somaxconn is unknown", () => {
      expect(KernelLimits.effectiveBacklog(100_000, {})).toEqual({ requested: 100_000, effective: 100_000 })
    })
  })

  describe("synQueue", () => {
    const backlog = KernelLimits.effectiveBacklog(100_000, { somaxconn: 4096 })
    it("with SYN cookies on (1, the default), the backlog bounds it and tcp_max_syn_backlog does not", () => {
      const text = KernelLimits.synQueue(backlog, { tcpSyncookies: 1, tcpMaxSynBacklog: 128 })
      expect(text).toContain("about 4096 half-open connections (the backlog), then SYN cookies")
      expect(text).toContain("tcp_max_syn_backlog applies only with cookies off")
      expect(text).not.toContain("128")
    })
    it("with cookies off (0), SYNs beyond are dropped, and tcp_max_syn_backlog's last quarter kept for known peers", () => {
      const text = KernelLimits.synQueue(backlog, { tcpSyncookies: 0, tcpMaxSynBacklog: 128 })
      expect(text).toContain("about 4096 half-open connections (the backlog), SYN cookies off")
      expect(text).toContain("fewer than a quarter of net.ipv4.tcp_max_syn_backlog (128)")
    })
    it("with cookies always (2), there is no queue; unknown, it says so", () => {
      expect(KernelLimits.synQueue(backlog, { tcpSyncookies: 2 })).toContain("SYN cookies for every handshake")
      expect(KernelLimits.synQueue(backlog, {})).toContain("tcp_syncookies unknown")
    })
  })

  it("the worst-case handshake timeout doubles from 1 s per retry", () => {
    expect(KernelLimits.handshakeTimeoutSeconds(5)).toBe(63)
    expect(KernelLimits.handshakeTimeoutSeconds(6)).toBe(127)
    expect(KernelLimits.handshakeTimeoutSeconds(0)).toBe(1)
  })
})

describe("serve under a low open-files limit", () => {
  /** Sends `ping`, half-closes, reads to the end: whether the echo came whole. */
  const ping = (port: number) =>
    new Promise<boolean>((resolve) => {
      const chunks: Array<Buffer> = []
      const socket = net.connect(port, "127.0.0.1", () => socket.end("ping"))
      socket.on("data", (chunk: Buffer) => chunks.push(chunk))
      socket.once("end", () => resolve(Buffer.concat(chunks).toString() === "ping"))
      socket.once("error", () => resolve(false))
    })

  it.runIf(hasPrlimit)(
    "at 32 it reads its limits, fits to them and says so; every connection is echoed or dropped and counted",
    async () => {
      const server = await serve(["--metrics-port", "0"], {}, ["prlimit", "--nofile=32:32"])
      try {
        // The last line of the start: the report of the limits came before it.
        const url = /http:\/\/\S+\/metrics/.exec(await server.waitFor(/metrics on http:/))![0]
        expect(server.lines.find((line) => line.includes("open files limit"))).toMatch(
          /open files limit 32 \(hard 32\) .*too low, at most \d+ will be held/
        )
        const echoed = (await Promise.all(Array.from({ length: 60 }, () => ping(server.address.port))))
          .filter((whole) => whole).length
        expect(echoed).toBeGreaterThan(0)
        const text = await (await fetch(url)).text()
        const dropped = Number(/^echo_connections_dropped_total\{reason="max_connections"\} (\d+)$/m.exec(text)?.[1])
        // None lost silently: what was not echoed was dropped, and counted.
        expect(dropped).toBe(60 - echoed)
        expect(server.lines.some((line) => line.includes("dropped connection from"))).toBe(true)
        server.child.kill("SIGTERM")
        expect(await server.exited).toBe(0)
      } finally {
        server.child.kill("SIGKILL")
      }
    }
  )
})
