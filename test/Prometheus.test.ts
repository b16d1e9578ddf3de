import { extendScope } from "#line/kit"
import * as LineMetrics from "#line/metrics"
import { withLogger } from "#test-line/logging"
import { linearBoundaries, summary } from "#test-line/prometheus"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Logger, Metric, Ref, Scope } from "effect"
import { spawnSync } from "node:child_process"
import * as net from "node:net"
import { Client, Metrics, Server } from "../src/index.js"
import type * as MetricsWire from "../src/internal/metricsWire.js"
import * as Prometheus from "../src/Prometheus.js"

// Touched so that every kind the exposition writes has a series, labelled and not.
const histogram = LineMetrics.histogram("test_wait_seconds", {
  description: "A test histogram",
  boundaries: linearBoundaries({ start: 0.5, width: 0.5, count: 3 })
})
const upDown = Metric.counter("test_in_flight", { description: "A counter that can go down" })
const bare = Metric.counter("test_events", { incremental: true })

/** The families of an exposition: HELP, TYPE and the sample lines of each. */
const families = (text: string) => {
  const found = new Map<string, { help?: string; type?: string; samples: Array<string> }>()
  const of = (name: string) => found.get(name) ?? found.set(name, { samples: [] }).get(name)!
  let current = ""
  for (const line of text.split("\n")) {
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line)
    if (meta !== null) {
      current = meta[2]!
      if (meta[1] === "HELP") of(current).help = meta[3]!
      else of(current).type = meta[3]!
    } else if (line !== "") {
      expect(line.startsWith(current), `${line} is not in the family ${current} above it`).toBe(true)
      of(current).samples.push(line)
    }
  }
  return found
}

const http = (port: number, method: string, path: string) =>
  fetch(`http://127.0.0.1:${port}${path}`, { method }).then(async (r) => ({
    status: r.status,
    type: r.headers.get("content-type"),
    allow: r.headers.get("allow"),
    body: await r.text()
  }))

describe("Prometheus.exposition", () => {
  it.effect("every family has a HELP and a TYPE, and none mixes an unlabelled series with labelled ones", () =>
    Effect.gen(function*() {
      yield* Metric.update(histogram, 0.7)
      yield* Metric.update(upDown, 3)
      yield* Metric.update(upDown, -1)
      yield* Metric.update(bare, 1)
      const text = yield* Prometheus.exposition
      const all = families(text)
      for (const [name, family] of all) {
        expect(family.help, name).toBeTruthy()
        expect(family.type, name).toMatch(/^(counter|gauge|histogram|summary)$/)
        const labelled = family.samples.filter((s) => /^[^{ ]+\{/.test(s) && !/^[^{ ]+\{le="[^"]*"\}/.test(s))
        const unlabelled = family.samples.filter((s) => /^[^{ ]+ /.test(s) && !/_(sum|count) /.test(s))
        expect(labelled.length === 0 || unlabelled.length === 0, `${name} mixes labelled and unlabelled series`).toBe(
          true
        )
      }
      // Prometheus names: base units with their suffix, `_total` on counters.
      for (const name of ["echo_received_bytes_total", "echo_sent_bytes_total", "echo_connections_accepted_total"]) {
        expect(all.get(name)?.type, name).toBe("counter")
      }
      expect(all.get("echo_connection_duration_seconds")?.type).toBe("histogram")
      expect(all.get("echo_connections_dropped_total")?.samples).toContain(
        "echo_connections_dropped_total{reason=\"max_connections\"} 0"
      )
      expect(all.get("test_events_total")).toMatchObject({
        type: "counter",
        help: "test_events_total (no description given)"
      })
      expect(all.get("test_in_flight")).toMatchObject({ type: "gauge", samples: ["test_in_flight 2"] })
      // Cumulative buckets up to +Inf, then the sum and the count.
      expect(all.get("test_wait_seconds")?.samples).toEqual([
        "test_wait_seconds_bucket{le=\"0.5\"} 0",
        "test_wait_seconds_bucket{le=\"1\"} 1",
        "test_wait_seconds_bucket{le=\"+Inf\"} 1",
        "test_wait_seconds_sum 0.7",
        "test_wait_seconds_count 1"
      ])
      // Effect's own fiber metrics are left out, and OpenMetrics-only lines are never written.
      expect(text).not.toMatch(/effect_fiber_|^# UNIT/m)
    }))

  it.effect("escapes label values and help text", () =>
    Effect.gen(function*() {
      const escaped = Metric.counter("test_escaped", { description: "back\\slash\nnewline", incremental: true })
      yield* Metric.update(LineMetrics.tagged(escaped, "path", "a\"b\\c\nd"), 1)
      const text = yield* Prometheus.exposition
      expect(text).toContain("# HELP test_escaped_total back\\\\slash\\nnewline\n")
      expect(text).toContain("test_escaped_total{path=\"a\\\"b\\\\c\\nd\"} 1\n")
    }))

  it.effect("a frequency is a counter per key; a summary, its quantiles, sum and count", () =>
    Effect.gen(function*() {
      const words = Metric.frequency("test_words", { description: "Words seen" })
      const sizes = summary("test_sizes", {
        description: "Sizes seen",
        maxAge: "1 minute",
        maxSize: 10,
        quantiles: [0.5]
      })
      yield* Metric.update(words, "hello")
      yield* Metric.update(words, "hello")
      yield* Metric.update(sizes, 4)
      const all = families(yield* Prometheus.exposition)
      expect(all.get("test_words_total")).toEqual({
        help: "Words seen",
        type: "counter",
        samples: ["test_words_total{key=\"hello\"} 2"]
      })
      expect(all.get("test_sizes")).toEqual({
        help: "Sizes seen",
        type: "summary",
        samples: ["test_sizes{quantile=\"0.5\"} 4", "test_sizes_sum 4", "test_sizes_count 1"]
      })
    }))
})

const promtool = spawnSync("promtool", ["--version"], { encoding: "utf8" }).status === 0
const required = process.env.ECHO_TEST_REQUIRE_PROMTOOL === "1"

describe("promtool", () => {
  const title = promtool
    ? "promtool check metrics accepts the exposition, after traffic"
    : "promtool check metrics: NOT RUN, promtool is not installed (apt-get install prometheus; .ci/run installs it)"
  it.skipIf(!promtool && !required)(title, () => {
    expect(promtool, "promtool is required here (ECHO_TEST_REQUIRE_PROMTOOL=1) but not installed").toBe(true)
    return Effect.gen(function*() {
      const server = yield* Server.make()
      yield* Client.roundTrip({ port: server.address.port }, [Buffer.from("promtool")])
      yield* Metric.update(LineMetrics.tagged(Metrics.connectionErrors, "reason", "Reset"), 1)
      const text = yield* Prometheus.exposition
      const result = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" })
      expect(result.stdout + result.stderr).toBe("")
      expect(result.status).toBe(0)
    }).pipe(Effect.scoped, Effect.runPromise)
  })
})

describe("Prometheus.formatSeries", () => {
  it("each kind of series as its family; a series under a name a family of another type holds is left out", () => {
    const none = { description: undefined, tags: [] } as const
    const series: ReadonlyArray<MetricsWire.Series> = [
      { name: "events", description: "e", tags: [["path", "/"]], kind: "frequency", occurrences: [["a", 2], ["b", 1]] },
      { name: "hits_total", ...none, kind: "frequency", occurrences: [["c", 3]] },
      {
        name: "latency",
        ...none,
        kind: "summary",
        error: 0.01,
        quantiles: [[0.5, 1.5], [0.99, undefined]],
        count: 2,
        min: 1,
        max: 2,
        sum: 3
      },
      {
        name: "size",
        ...none,
        kind: "histogram",
        buckets: [[1, 1], [Infinity, 2]],
        count: 2,
        min: 0.5,
        max: 3,
        sum: 3.5
      },
      { name: "held_total", ...none, kind: "gauge", value: 4 },
      // Each of these under a name taken by a family of another type.
      { name: "events_total", ...none, kind: "gauge", value: 1 },
      { name: "events_total", ...none, kind: "counter", incremental: false, value: 1 },
      { name: "latency", ...none, kind: "histogram", buckets: [[Infinity, 1]], count: 1, min: 1, max: 1, sum: 1 },
      { name: "size", ...none, kind: "summary", error: 0.01, quantiles: [[0.5, 1]], count: 1, min: 1, max: 1, sum: 1 },
      { name: "held", ...none, kind: "counter", incremental: true, value: 1 },
      { name: "held", ...none, kind: "frequency", occurrences: [["d", 1]] }
    ]
    expect(Prometheus.formatSeries(series)).toBe([
      "# HELP events_total e",
      "# TYPE events_total counter",
      "events_total{path=\"/\",key=\"a\"} 2",
      "events_total{path=\"/\",key=\"b\"} 1",
      "# HELP hits_total hits_total (no description given)",
      "# TYPE hits_total counter",
      "hits_total{key=\"c\"} 3",
      "# HELP latency latency (no description given)",
      "# TYPE latency summary",
      "latency{quantile=\"0.5\"} 1.5",
      "latency{quantile=\"0.99\"} NaN",
      "latency_sum 3",
      "latency_count 2",
      "# HELP size size (no description given)",
      "# TYPE size histogram",
      "size_bucket{le=\"1\"} 1",
      "size_bucket{le=\"+Inf\"} 2",
      "size_sum 3.5",
      "size_count 2",
      "# HELP held_total held_total (no description given)",
      "# TYPE held_total gauge",
      "held_total 4",
      ""
    ].join("\n"))
  })
})

describe("Prometheus.serve", () => {
  it.live("answers GET and HEAD on /metrics, 405 to other methods, and a hint elsewhere", () =>
    Effect.gen(function*() {
      const { port } = yield* Prometheus.serve({ port: 0 })
      const get = yield* Effect.promise(() => http(port, "GET", "/metrics"))
      expect(get.status).toBe(200)
      expect(get.type).toBe(Prometheus.contentType)
      expect(get.body).toContain("# TYPE echo_connections_accepted_total counter")
      expect((yield* Effect.promise(() => http(port, "HEAD", "/metrics"))).status).toBe(200)
      const post = yield* Effect.promise(() => http(port, "POST", "/metrics"))
      expect(post).toMatchObject({ status: 405, allow: "GET, HEAD" })
      const root = yield* Effect.promise(() => http(port, "GET", "/"))
      expect(root.status).toBe(200)
      expect(root.body).toContain("/metrics")
      const other = yield* Effect.promise(() => http(port, "GET", "/stats"))
      expect(other.status).toBe(404)
      expect(other.body).toContain("/metrics")
    }).pipe(Effect.scoped))

  it.live("/healthz answers 200 while the process runs; /readyz follows its readiness, 503 when not ready", () =>
    Effect.gen(function*() {
      const ready = yield* Ref.make(true)
      const { port } = yield* Prometheus.serve({ port: 0, ready: Ref.get(ready) })
      expect(yield* Effect.promise(() => http(port, "GET", "/healthz"))).toMatchObject({ status: 200, body: "ok\n" })
      expect((yield* Effect.promise(() => http(port, "GET", "/readyz"))).status).toBe(200)
      yield* Ref.set(ready, false)
      const unready = yield* Effect.promise(() => http(port, "GET", "/readyz"))
      expect(unready.status).toBe(503)
      expect(unready.body).toContain("not ready")
      // Alive all the same: liveness is not readiness.
      expect((yield* Effect.promise(() => http(port, "HEAD", "/healthz"))).status).toBe(200)
      expect((yield* Effect.promise(() => http(port, "POST", "/readyz"))).status).toBe(405)
    }).pipe(Effect.scoped))

  it.live("/metrics serves the exposition it is given; one that fails answers 500 and is logged", () =>
    Effect.gen(function*() {
      const given = yield* Prometheus.serve({ port: 0, exposition: Effect.succeed("# given\n") })
      expect((yield* Effect.promise(() => http(given.port, "GET", "/metrics"))).body).toBe("# given\n")
      const failing = yield* Prometheus.serve({ port: 0, exposition: Effect.die("broken") })
      expect((yield* Effect.promise(() => http(failing.port, "GET", "/metrics"))).status).toBe(500)
    }).pipe(Effect.scoped))

  it.live("holds at most maxConnections HTTP connections, closes the excess at once and logs it", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const capture = Logger.make(({ message }) => logged.push(String(message)))
      const { port } = yield* Prometheus.serve({ port: 0, maxConnections: 2 }).pipe(
        withLogger(capture)
      )
      const open = () =>
        new Promise<net.Socket>((resolve) => {
          const socket = net.connect(port, "127.0.0.1", () => resolve(socket))
          socket.on("error", () => {})
        })
      const droppedBefore = (yield* Metric.value(Prometheus.connectionsDropped)).count
      const held = [yield* Effect.promise(open), yield* Effect.promise(open)]
      // Both are served: a request on each gets its answer.
      for (const socket of held) {
        const answer = yield* Effect.promise(() =>
          new Promise<string>((resolve) => {
            socket.once("data", (d: Buffer) => resolve(d.toString()))
            socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
          })
        )
        expect(answer).toMatch(/^HTTP\/1\.1 200/)
      }
      // A third is closed without a byte, and the drop is logged.
      const third = yield* Effect.promise(open)
      const received = yield* Effect.promise(() =>
        new Promise<number>((resolve) => {
          let bytes = 0
          third.on("data", (d: Buffer) => (bytes += d.length))
          third.once("close", () => resolve(bytes))
          third.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        })
      )
      expect(received).toBe(0)
      expect(logged.some((m) => /^metrics: dropped HTTP connection from 127\.0\.0\.1:\d+: 2 open/.test(m))).toBe(true)
      // And counted, in the exposition the metrics port serves.
      expect((yield* Metric.value(Prometheus.connectionsDropped)).count - droppedBefore).toBe(1)
      expect(yield* Prometheus.exposition).toMatch(/^echo_metrics_connections_dropped_total \d+$/m)
      for (const socket of held) socket.destroy()
    }).pipe(Effect.scoped))

  it.live("its release closes idle HTTP connections instead of waiting for them", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { port } = yield* extendScope(Prometheus.serve({ port: 0 }), scope)
      const idle = yield* Effect.promise(() =>
        new Promise<net.Socket>((resolve) => {
          const socket = net.connect(port, "127.0.0.1", () => resolve(socket))
          socket.on("error", () => {})
        })
      )
      const closed = new Promise<void>((resolve) => idle.once("close", () => resolve()))
      yield* Scope.close(scope, Exit.void)
      yield* Effect.promise(() => closed)
    }))

  it.effect("a port in use or an invalid option is a ListenError naming the reason", () =>
    Effect.gen(function*() {
      const { port } = yield* Prometheus.serve({ port: 0 })
      const inUse = yield* Effect.flip(Prometheus.serve({ port }))
      expect(inUse.reason).toBe("AddressInUse")
      expect(inUse.message).toBe(`127.0.0.1:${port} is already in use`)
      const invalid = yield* Effect.flip(Prometheus.serve({ port: 70000 }))
      expect(invalid.reason).toBe("InvalidOption")
      expect(invalid.message).toBe("invalid port: 70000 (expected an integer from 0 to 65535)")
      const cap = yield* Effect.flip(Prometheus.serve({ port: 0, maxConnections: 0 }))
      expect(cap.option).toBe("maxConnections")
    }).pipe(Effect.scoped))
})
