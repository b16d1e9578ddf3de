import { type LogRecord, recording, withLogger } from "#test-line/logging"
import { counter } from "#test-line/serving"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as net from "node:net"
import { Client, Metrics, Server } from "../src/index.js"
import { LogAggregator } from "../src/internal/logAggregator.js"

/** An aggregator whose records are captured and whose timer fires only when the test says so. */
const harness = (named?: number) => {
  const records: Array<LogRecord> = []
  const capture = recording(records)
  const timers: Array<() => void> = []
  let armed = 0
  const logs = new LogAggregator({
    emit: (record, peer) =>
      Effect.runSync(
        record.pipe(
          peer === undefined ? (e) => e : Effect.annotateLogs("peer", peer),
          withLogger(capture, true)
        )
      ),
    ...(named === undefined ? {} : { named }),
    schedule: (f) => {
      armed++
      let cancelled = false
      timers.push(() => {
        if (!cancelled) f()
      })
      return () => {
        cancelled = true
        armed--
      }
    }
  })
  /** The end of the current window. */
  const tick = () => {
    const f = timers.shift()
    expect(f).toBeDefined()
    armed--
    f!()
  }
  return { logs, records, tick, armed: () => armed }
}

const reset = (peer: string) => () => Effect.logInfo(`${peer} reset the connection`)

describe("LogAggregator", () => {
  it("logs the first event at once, as it is, and sums up the rest of its window in one record", () => {
    const { logs, records, tick } = harness(2)
    for (let i = 1; i <= 5; i++) logs.add("reset", `127.0.0.1:${i}`, "Info", "resets", reset(`127.0.0.1:${i}`))
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({
      level: "INFO",
      message: "127.0.0.1:1 reset the connection",
      annotations: { peer: "127.0.0.1:1" }
    })
    tick()
    expect(records).toHaveLength(2)
    expect(records[1]!.level).toBe("INFO")
    expect(records[1]!.message).toBe("resets: 4 more within 1s, from 127.0.0.1:2, 127.0.0.1:3, and 2 more")
    expect(records[1]!.annotations).toMatchObject({ count: 4, peers: "127.0.0.1:2 127.0.0.1:3" })
  })

  it("under a steady flood writes one summary per window; a kind quiet for a window is logged at once again", () => {
    const { armed, logs, records, tick } = harness()
    logs.add("drop", "a", "Warning", "drops", () => Effect.logWarning("dropped a"))
    logs.add("drop", "b", "Warning", "drops", () => Effect.logWarning("dropped b"))
    tick()
    logs.add("drop", "c", "Warning", "drops", () => Effect.logWarning("dropped c"))
    tick()
    expect(records.map((r) => r.message)).toEqual([
      "dropped a",
      "drops: 1 more within 1s, from b",
      "drops: 1 more within 1s, from c"
    ])
    // A window with nothing: the kind is forgotten and no timer is left armed.
    tick()
    expect(armed()).toBe(0)
    logs.add("drop", "d", "Warning", "drops", () => Effect.logWarning("dropped d"))
    expect(records.at(-1)!.message).toBe("dropped d")
  })

  it("keeps kinds apart, each at its own level", () => {
    const { logs, records, tick } = harness()
    logs.add("drop", "a", "Warning", "drops", () => Effect.logWarning("dropped a"))
    logs.add("reset", "b", "Info", "resets", reset("b"))
    logs.add("drop", "c", "Warning", "drops", () => Effect.logWarning("dropped c"))
    logs.add("reset", "d", "Info", "resets", reset("d"))
    expect(records.map((r) => r.message)).toEqual(["dropped a", "b reset the connection"])
    tick()
    expect(records.slice(2).map((r) => [r.level, r.message])).toEqual([
      ["WARN", "drops: 1 more within 1s, from c"],
      ["INFO", "resets: 1 more within 1s, from d"]
    ])
  })

  it("flush writes what is still counted, disarms the timer, and is idempotent", () => {
    const { armed, logs, records } = harness()
    logs.add("reset", "a", "Info", "resets", reset("a"))
    logs.add("reset", "b", "Info", "resets", reset("b"))
    logs.flush()
    logs.flush()
    expect(records.map((r) => r.message)).toEqual(["a reset the connection", "resets: 1 more within 1s, from b"])
    expect(armed()).toBe(0)
  })

  it("its own timer does not keep the process alive", () => {
    const logs = new LogAggregator({ emit: () => {} })
    const before = process.getActiveResourcesInfo().filter((r) => r === "Timeout").length
    logs.add("reset", "a", "Info", "resets", reset("a"))
    const after = process.getActiveResourcesInfo().filter((r) => r === "Timeout").length
    logs.flush()
    expect(after).toBe(before)
  })
})

describe("a server under a flood of connections it cannot hold", () => {
  it.live("logs a few records, and the counts they give add up to every drop", () =>
    Effect.gen(function*() {
      const records: Array<LogRecord> = []
      const dropped = counter(Metrics.connectionsDropped, "max_connections")
      const before = yield* dropped
      const peers = 200
      yield* Effect.scoped(Effect.gen(function*() {
        // One connection served, none waiting: every other one is dropped.
        const server = yield* Server.make({ maxConnections: 1, maxPending: 0, shutdownTimeout: 0 }, () => Effect.never)
          .pipe(withLogger(recording(records)))
        const holder = yield* Client.connect({ port: server.address.port })
        yield* Effect.promise(() =>
          Promise.all(Array.from({ length: peers }, () =>
            new Promise<void>((resolve) => {
              const socket = net.connect(server.address.port, "127.0.0.1")
              socket.on("error", () => {})
              socket.once("close", () => resolve())
            })))
        )
        expect(holder.peer).toMatch(/^127\.0\.0\.1:\d+$/)
      }))
      // Every drop is counted, and every drop is in the logs: one record of its own or a summary's count.
      const drops = (yield* dropped) - before
      expect(drops).toBe(peers)
      const single = records.filter((r) => r.message.startsWith("dropped connection from"))
      const summaries = records.filter((r) => r.message.startsWith("dropped connections"))
      const summed = summaries.reduce((n, r) => n + Number(r.annotations.count), 0)
      expect(single.length + summed).toBe(peers)
      expect(single.length + summaries.length).toBeLessThan(peers / 4)
    }))
})
