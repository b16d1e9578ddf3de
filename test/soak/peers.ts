/**
 * The soak's peers, on plain `node:net` so that each does exactly what its plan says: a plan is
 * drawn from the peer's own random stream (so a seed gives the same peers), then run against the
 * server's port, and what the peer saw is judged by verdict.ts. Every peer is bounded in bytes
 * (its payload) and in time (its plan's waits plus a margin): past its bound it is a hang.
 */
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as net from "node:net"
import * as TcpState from "../../src/internal/tcpState.js"
import * as Random from "./random.js"
import * as Verdict from "./verdict.js"

/** The bounds every plan is drawn within. */
export const bounds = {
  /** The largest payload a peer sends: a stalling one (see `plan`); the others send half as much. */
  maxPayload: 8 * 2 ** 20,
  /** The longest a stalling peer reads nothing. */
  maxStallMs: 8_000,
  /** The most a slow reader spends pausing in all. */
  slowBudgetMs: 15_000,
  /**
   * A pause between a peer's writes, or before its half-close or reset, is kept well below the
   * idle timeouts the soak gives the server, so that a peer still writing is never idle to it.
   */
  maxPauseMs: 500,
  /** Beyond its plan's own waits, how long a peer may take: connect, echo, the server's shutdown. */
  marginMs: 30_000,
  /** The echo rate a peer's bound allows for (a loaded machine's loopback is far faster). */
  bytesPerSecond: 256 * 1024,
  /** The largest HTTP answer read. */
  maxHttpAnswer: 2 ** 20
} as const

/** What a peer is. */
export type Kind =
  | "echo"
  | "trickle"
  | "slow-read"
  | "stall"
  | "reset"
  | "proxy-garbage"
  | "scrape"
  | "bad-http"
  /** Not in the mix: the stalled peers of a burst before a chaos event (see `burstPlan`). */
  | "burst"

/** The kinds and their weights in the mix. */
export const mix: ReadonlyArray<readonly [Exclude<Kind, "burst">, number]> = [
  ["echo", 26],
  ["trickle", 12],
  ["slow-read", 14],
  ["stall", 14],
  ["reset", 12],
  ["proxy-garbage", 8],
  ["scrape", 9],
  ["bad-http", 5]
]

/** How an echo peer reads. */
export type Read =
  | { readonly _tag: "Eager" }
  /** Pauses after each chunk, a random time up to `maxPauseMs`, until `budgetMs` is spent. */
  | { readonly _tag: "Slow"; readonly maxPauseMs: number; readonly budgetMs: number }
  /** Reads nothing for `ms`, then reads to the end, or destroys the socket unread. */
  | { readonly _tag: "Stall"; readonly ms: number; readonly then: "read" | "destroy" }

/** An echo peer's plan. */
export interface EchoPlan {
  readonly _tag: "Echo"
  readonly kind: Exclude<Kind, "scrape" | "bad-http">
  /** Sent first and not echoed: a PROXY header, with `--proxy-protocol`. */
  readonly header: Buffer
  /** The header is malformed: the server must refuse the connection with a RST. */
  readonly malformedHeader: boolean
  /** What the header is, for the report. */
  readonly headerName: string
  /** Whose echo is expected. */
  readonly payload: Buffer
  /** The payload's writes: sizes, each followed by a pause. */
  readonly writes: ReadonlyArray<{ readonly bytes: number; readonly pauseMs: number }>
  /** After the last write, how long until the half-close; `undefined`: never. */
  readonly halfCloseAfterMs: number | undefined
  readonly read: Read
  /** After connecting, when to reset (SO_LINGER 0) if no end came first; `undefined`: never. */
  readonly resetAfterMs: number | undefined
  readonly boundMs: number
}

/** A metrics peer's plan. */
export interface HttpPlan {
  readonly _tag: "Http"
  readonly kind: "scrape" | "bad-http"
  readonly variant: string
  readonly request: Buffer
  readonly wellFormed: boolean
  readonly statuses: ReadonlyArray<number> | "any"
  /** A /metrics answer must carry the server's series. */
  readonly metricsBody: boolean
  /** Leave after this long without waiting for an answer (a request that never ends). */
  readonly abandonAfterMs: number | undefined
  readonly boundMs: number
}

export type Plan = EchoPlan | HttpPlan

// --- PROXY headers.

const v2Signature = Buffer.from([0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A])

const v2 = (command: number, random: Random.Random, port: number): Buffer => {
  const body = Buffer.alloc(12)
  body.set([192, 0, 2, random.int(1, 254)], 0)
  body.set([127, 0, 0, 1], 4)
  body.writeUInt16BE(random.int(1024, 65535), 8)
  body.writeUInt16BE(port, 10)
  const head = Buffer.from([0x20 | command, 0x11, 0x00, 12])
  return Buffer.concat([v2Signature, head, body])
}

/** Headers a trusted proxy sends: what `--proxy-protocol` serves. */
const validHeaders: ReadonlyArray<readonly [string, (random: Random.Random, port: number) => Buffer]> = [
  [
    "v1 TCP4",
    (r, port) => Buffer.from(`PROXY TCP4 192.0.2.${r.int(1, 254)} 127.0.0.1 ${r.int(1024, 65535)} ${port}\r\n`)
  ],
  ["v1 UNKNOWN", () => Buffer.from("PROXY UNKNOWN\r\n")],
  ["v2 PROXY TCP4", (r, port) => v2(0x1, r, port)],
  ["v2 LOCAL", (r, port) => v2(0x0, r, port)]
]

/**
 * Headers that are not valid PROXY headers. With `--proxy-protocol` each must be refused with a
 * RST; without it, they are bytes like any other and come back.
 */
const garbageHeaders: ReadonlyArray<readonly [string, (random: Random.Random) => Buffer]> = [
  ["v1 bad source address", () => Buffer.from("PROXY TCP4 not.an.ip 127.0.0.1 1 2\r\n")],
  ["v1 source port 99999", () => Buffer.from("PROXY TCP4 192.0.2.1 127.0.0.1 99999 2\r\n")],
  ["v1 unknown protocol", () => Buffer.from("PROXY GARBAGE 1 2 3 4\r\n")],
  ["v1 without CRLF in 107 bytes", () => Buffer.from(`PROXY TCP4 ${"9".repeat(120)}`)],
  ["v1 bad destination address", () => Buffer.from("PROXY TCP4 192.0.2.1 not.an.addr.x 1 2\r\n")],
  ["v1 destination port 99999", () => Buffer.from("PROXY TCP4 192.0.2.1 127.0.0.1 1 99999\r\n")],
  ["HTTP instead of a header", () => Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")],
  ["v2 version 3", () => Buffer.concat([v2Signature, Buffer.from([0x31, 0x11, 0x00, 0x00])])],
  ["v2 truncated length", () => Buffer.concat([v2Signature, Buffer.from([0x21, 0x11, 0xFF, 0xFF]), Buffer.alloc(8)])],
  ["random bytes", (r) => Buffer.from(Array.from({ length: r.int(1, 200) }, () => r.int(0, 255)))]
]

// --- Plans.

/** Payload writes: all at once, or `maxWrites` pieces at most with pauses. */
const writesOf = (
  random: Random.Random,
  total: number,
  trickle: boolean
): Array<{ bytes: number; pauseMs: number }> => {
  if (!trickle || total === 0) return [{ bytes: total, pauseMs: 0 }]
  const maxWrites = 64
  const out: Array<{ bytes: number; pauseMs: number }> = []
  let left = total
  while (left > 0) {
    const size = Math.min(left, Math.max(random.logInt(1, 64 * 1024), Math.ceil(total / maxWrites)))
    out.push({ bytes: size, pauseMs: random.int(0, 200) })
    left -= size
  }
  return out
}

/** The kind of peer `index`: the first draw of its stream, as `plan` makes it. */
export const kindOf = (seed: number, index: number): Exclude<Kind, "burst"> =>
  Random.stream(seed, `peer:${index}`).weighted(mix)

/** Whether peers of `kind` talk to the metrics port. */
export const isHttp = (kind: Kind): kind is "scrape" | "bad-http" => kind === "scrape" || kind === "bad-http"

/** The plan of peer `index` against a server with or without `--proxy-protocol` on `port`. */
export const plan = (seed: number, index: number, proxyProtocol: boolean, port: number): Plan => {
  const random = Random.stream(seed, `peer:${index}`)
  const kind = random.weighted(mix)
  if (isHttp(kind)) return httpPlan(random, kind)
  const data = (bytes: number) => Random.bytes(seed, `peer:${index}`, bytes)
  const garbage = kind === "proxy-garbage" ? random.weighted(garbageHeaders.map((g) => [g, 1] as const)) : undefined
  const valid = random.weighted(validHeaders.map((h) => [h, 1] as const))
  let header: Buffer = Buffer.alloc(0)
  let headerName = "none"
  let payload: Buffer
  const maxPause = bounds.maxPauseMs
  let writes: Array<{ bytes: number; pauseMs: number }>
  let halfCloseAfterMs: number | undefined = random.int(0, maxPause)
  let read: Read = { _tag: "Eager" }
  let resetAfterMs: number | undefined
  switch (kind) {
    case "echo":
      payload = data(random.logInt(0, bounds.maxPayload / 2))
      writes = writesOf(random, payload.length, false)
      halfCloseAfterMs = 0
      break
    case "trickle":
      payload = data(random.logInt(1, 2 ** 20))
      writes = writesOf(random, payload.length, true)
      break
    case "slow-read":
      payload = data(random.int(64 * 1024, bounds.maxPayload / 2))
      writes = writesOf(random, payload.length, false)
      read = { _tag: "Slow", maxPauseMs: 250, budgetMs: bounds.slowBudgetMs }
      break
    case "stall":
      // Uniform, not log-uniform: the sizes near what the kernel buffers for a peer that does not
      // read (a few MB) are the ones that leave the server with the whole request read and part
      // of its answer in its own memory, which only a reset may cut off.
      payload = data(random.int(64 * 1024, bounds.maxPayload))
      writes = writesOf(random, payload.length, false)
      read = {
        _tag: "Stall",
        ms: random.int(500, bounds.maxStallMs),
        then: random.chance(0.7) ? "read" : "destroy"
      }
      // The half-close comes at a random moment of the stall: a server without an idle timeout
      // waits for it as long as it takes, as it should.
      halfCloseAfterMs = random.int(0, read.ms)
      break
    case "reset":
      payload = data(random.logInt(0, 2 * 2 ** 20))
      writes = writesOf(random, payload.length, random.chance(0.5))
      if (random.chance(0.7)) halfCloseAfterMs = undefined
      resetAfterMs = random.int(0, 1_000)
      break
    case "proxy-garbage": {
      const [name, make] = garbage!
      const rest = data(random.logInt(0, 64 * 1024))
      headerName = name
      if (proxyProtocol) {
        header = make(random)
        payload = rest
      } else {
        payload = Buffer.concat([make(random), rest])
      }
      writes = writesOf(random, payload.length, false)
      break
    }
  }
  if (proxyProtocol && kind !== "proxy-garbage") {
    headerName = valid[0]
    header = valid[1](random, port)
  }
  const waits = writes.reduce((sum, w) => sum + w.pauseMs, 0) + (halfCloseAfterMs ?? 0) +
    (read._tag === "Stall" ? read.ms : read._tag === "Slow" ? read.budgetMs : 0) + (resetAfterMs ?? 0)
  return {
    _tag: "Echo",
    kind,
    header,
    malformedHeader: proxyProtocol && kind === "proxy-garbage",
    headerName,
    payload,
    writes,
    halfCloseAfterMs,
    read,
    resetAfterMs,
    boundMs: bounds.marginMs + waits + Math.ceil((payload.length / bounds.bytesPerSecond) * 1000)
  }
}

/** How many peers a burst has, and the largest request of one. */
export const burst = { peers: 24, maxPayload: 8 * 2 ** 20 } as const

/**
 * Peer `j` of burst `n`: a request of 1 to 8 MiB (a slice of `shared`, one buffer for the whole
 * burst), half-closed at once, nothing read for `stallMs`, then read to the end. A chaos event
 * comes while it stalls. The server reads such a request until its answer backs up; for the sizes
 * near what the kernel buffers, it has then read the whole request and holds part of the answer
 * in its own memory, which nothing but a reset may cut off: the case a forced exit or a killed
 * worker gets wrong, about one peer in fifty, so a burst makes it likely at each event.
 */
export const burstPlan = (
  seed: number,
  n: number,
  j: number,
  shared: Buffer,
  proxyProtocol: boolean,
  port: number,
  stallMs: number
): EchoPlan => {
  const random = Random.stream(seed, `burst:${n}:${j}`)
  const payload = shared.subarray(0, random.int(2 ** 20, Math.min(shared.length, burst.maxPayload)))
  const valid = random.weighted(validHeaders.map((h) => [h, 1] as const))
  return {
    _tag: "Echo",
    kind: "burst",
    header: proxyProtocol ? valid[1](random, port) : Buffer.alloc(0),
    malformedHeader: false,
    headerName: proxyProtocol ? valid[0] : "none",
    payload,
    writes: [{ bytes: payload.length, pauseMs: 0 }],
    halfCloseAfterMs: 0,
    read: { _tag: "Stall", ms: stallMs, then: "read" },
    resetAfterMs: undefined,
    boundMs: bounds.marginMs + stallMs + Math.ceil((payload.length / bounds.bytesPerSecond) * 1000)
  }
}

const request = (lines: ReadonlyArray<string>, body = ""): Buffer => Buffer.from(lines.join("\r\n") + "\r\n\r\n" + body)

const httpPlan = (random: Random.Random, kind: "scrape" | "bad-http"): HttpPlan => {
  const base = { _tag: "Http", kind, abandonAfterMs: undefined, boundMs: bounds.marginMs } as const
  if (kind === "scrape") {
    const path = random.weighted<string>([["/metrics", 3], ["/healthz", 1], ["/readyz", 1]])
    return {
      ...base,
      variant: `GET ${path}`,
      request: request([`GET ${path} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close"]),
      wellFormed: true,
      // /metrics answers 500 while a worker cannot be asked; /readyz 503 while not accepting.
      statuses: path === "/healthz" ? [200] : path === "/readyz" ? [200, 503] : [200, 500],
      metricsBody: path === "/metrics"
    }
  }
  const variant = random.weighted<string>([
    ["garbage", 1],
    ["unknown method", 1],
    ["POST", 1],
    ["no such page", 1],
    ["huge header", 1],
    ["HTTP/7.1", 1],
    ["request that never ends", 1]
  ])
  const malformed = { ...base, variant, wellFormed: false, statuses: "any", metricsBody: false } as const
  switch (variant) {
    case "garbage":
      return {
        ...malformed,
        request: Buffer.from(Array.from({ length: random.int(1, 2048) }, () => random.int(0, 255)))
      }
    case "unknown method":
      return { ...malformed, request: request(["BREW /metrics HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]) }
    case "POST":
      return {
        ...malformed,
        wellFormed: true,
        statuses: [405],
        request: request(
          ["POST /metrics HTTP/1.1", "Host: 127.0.0.1", "Content-Length: 5", "Connection: close"],
          "hello"
        )
      }
    case "no such page":
      return {
        ...malformed,
        wellFormed: true,
        statuses: [404],
        request: request(["GET /nope HTTP/1.1", "Host: 127.0.0.1", "Connection: close"])
      }
    case "huge header":
      return {
        ...malformed,
        request: request([
          "GET /metrics HTTP/1.1",
          `X-Big: ${"a".repeat(random.int(32, 128) * 1024)}`,
          "Connection: close"
        ])
      }
    case "HTTP/7.1":
      return { ...malformed, request: request(["GET /metrics HTTP/7.1", "Host: 127.0.0.1"]) }
    default:
      return {
        ...malformed,
        request: Buffer.from("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"),
        abandonAfterMs: random.int(500, 5_000),
        boundMs: bounds.marginMs + 5_000
      }
  }
}

// --- Running a plan.

/** What a peer saw, and the verdict on it. */
export interface Seen {
  readonly outcome: Verdict.Outcome
  readonly end: Verdict.End
  readonly expected: number
  readonly received: number
  /** Where the first wrong byte was. */
  readonly mismatchAt: number | undefined
  readonly sentSha256: string | undefined
  readonly receivedSha256: string | undefined
  /** The payload was sent whole (and the half-close, if planned), before the end came. */
  readonly sentAll: boolean
  readonly status: number | undefined
  readonly ms: number
}

const resets = new Set(["ECONNRESET", "EPIPE"])

/** What `drive` gives a plan to act with. */
interface Controls {
  readonly socket: net.Socket
  /** Runs `f` in `ms`, unless the peer has settled by then. */
  readonly later: (ms: number, f: () => void) => void
  /** Resets the connection (SO_LINGER 0) and settles as abandoned: the peer's own end. */
  readonly abandon: () => void
  /** The peer has sent all it will (its half-close, or its last write, handed to the kernel). */
  readonly sent: () => void
}

/**
 * A socket run to its end: `onConnect` starts the plan, `onData` sees each chunk. Settles once,
 * with the end as the peer saw it: a FIN the kernel confirms (the connection still in its tables)
 * or a RST (an error, or an end of input the kernel no longer has: libuv reports a RST right
 * behind the data as a clean end); a refusal before connecting; the bound passing.
 *
 * A FIN that comes before the peer has sent everything does not settle it yet: the peer goes on
 * as planned, as a client would, and a server gone without reading the rest answers it with a
 * RST (EPIPE, ECONNRESET, or ENOTCONN at the half-close). Only a FIN that still stands once the
 * peer has sent everything is the end it saw.
 */
const drive = (
  port: number,
  boundMs: number,
  setup: (controls: Controls) => {
    readonly onConnect: () => void
    readonly onData: (chunk: Buffer) => void
  }
): Effect.Effect<{ end: Verdict.End; ms: number }> =>
  Effect.async((resume) => {
    const started = Date.now()
    const timers = new Set<NodeJS.Timeout>()
    let done = false
    let connected = false
    let sentAll = false
    let finFirst = false
    let ends: TcpState.Ends | undefined
    const socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true })
    const finish = (end: Verdict.End) => {
      if (done) return
      done = true
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      socket.destroy()
      resume(Effect.succeed({ end, ms: Date.now() - started }))
    }
    const later = (ms: number, f: () => void) => {
      const timer = setTimeout(() => {
        timers.delete(timer)
        if (!done) f()
      }, ms)
      timers.add(timer)
    }
    const abandon = () => {
      // After a FIN, the peer finishes sending instead, to see whether a RST answers.
      if (done || finFirst) return
      // libuv refuses SO_LINGER 0 once a half-close was asked (EINVAL): then a close, which the
      // kernel turns into a RST anyway while unread bytes wait.
      if (connected && !socket.writableEnded) socket.resetAndDestroy()
      finish("abandoned")
    }
    const sent = () => {
      sentAll = true
      if (finFirst) finish("fin")
    }
    const { onConnect, onData } = setup({ socket, later, abandon, sent })
    later(boundMs, () => finish("timeout"))
    socket.on("connect", () => {
      connected = true
      ends = TcpState.ends(socket)
      onConnect()
    })
    socket.on("data", (chunk: Buffer) => {
      if (!done) onData(chunk)
    })
    socket.on("end", () => {
      if (ends !== undefined && TcpState.wasReset(ends) === true) return finish("reset")
      if (sentAll) return finish("fin")
      finFirst = true
    })
    socket.on("error", (error: NodeJS.ErrnoException) => {
      const code = error.code ?? error.message
      finish(
        !connected && code === "ECONNREFUSED"
          ? "refused"
          : resets.has(code) || (finFirst && code === "ENOTCONN")
          ? "reset"
          : { error: code }
      )
    })
    socket.on("close", () => finish({ error: "closed with neither an end of input nor an error" }))
    return Effect.sync(() => finish("abandoned"))
  })

/** Runs an echo plan against `port`. */
export const runEcho = (plan: EchoPlan, port: number, random: Random.Random): Effect.Effect<Seen> => {
  let received = 0
  let mismatchAt: number | undefined
  let sentAll = false
  const hash = createHash("sha256")
  return Effect.map(
    drive(port, plan.boundMs, ({ abandon, later, sent, socket }) => {
      let slowSpent = 0
      const startReading = () => socket.resume()
      if (plan.read._tag === "Stall") socket.pause()
      const writeFrom = (i: number, offset: number) => {
        if (i === plan.writes.length) {
          const done = () => {
            sentAll = true
            sent()
          }
          // Without a half-close, the last write handed to the kernel is all it sends.
          if (plan.halfCloseAfterMs === undefined) socket.write(Buffer.alloc(0), done)
          else later(plan.halfCloseAfterMs, () => socket.end(done))
          return
        }
        const write = plan.writes[i]!
        if (write.bytes > 0) socket.write(plan.payload.subarray(offset, offset + write.bytes))
        if (write.pauseMs === 0) writeFrom(i + 1, offset + write.bytes)
        else later(write.pauseMs, () => writeFrom(i + 1, offset + write.bytes))
      }
      return {
        onConnect: () => {
          if (plan.header.length > 0) socket.write(plan.header)
          writeFrom(0, 0)
          if (plan.read._tag === "Stall") {
            const then = plan.read.then
            later(plan.read.ms, () => (then === "read" ? startReading() : abandon()))
          }
          if (plan.resetAfterMs !== undefined) later(plan.resetAfterMs, abandon)
        },
        onData: (chunk) => {
          if (mismatchAt === undefined) {
            const want = plan.payload.subarray(received, received + chunk.length)
            if (want.length < chunk.length || !want.equals(chunk)) {
              let at = 0
              while (at < want.length && want[at] === chunk[at]) at++
              mismatchAt = received + at
            }
          }
          hash.update(chunk)
          received += chunk.length
          if (plan.read._tag === "Slow" && slowSpent < plan.read.budgetMs) {
            const pause = random.int(1, plan.read.maxPauseMs)
            slowSpent += pause
            socket.pause()
            later(pause, () => socket.resume())
          }
        }
      }
    }),
    ({ end, ms }) => {
      const seen = { expected: plan.payload.length, received, mismatch: mismatchAt !== undefined, end }
      const outcome = plan.malformedHeader ? Verdict.malformedHeader(seen) : Verdict.echo(seen)
      const failed = Verdict.failures.has(outcome)
      return {
        outcome,
        end,
        expected: plan.payload.length,
        received,
        mismatchAt,
        sentSha256: failed ? createHash("sha256").update(plan.payload).digest("hex") : undefined,
        receivedSha256: failed ? hash.digest("hex") : undefined,
        sentAll,
        status: undefined,
        ms
      }
    }
  )
}

/** The parts of an HTTP answer that came: its status, and whether it is whole by its own framing. */
export const parseHttp = (
  answer: Buffer,
  atEnd: boolean
): { status: number | undefined; whole: boolean; body: string } => {
  const head = answer.indexOf("\r\n\r\n")
  const status = /^HTTP\/1\.[01] (\d{3}) /.exec(answer.subarray(0, 64).toString("latin1"))?.[1]
  if (head < 0 || status === undefined) {
    return { status: status === undefined ? undefined : Number(status), whole: false, body: "" }
  }
  const headers = answer.subarray(0, head).toString("latin1").toLowerCase()
  const body = answer.subarray(head + 4)
  const length = /\r\ncontent-length: *(\d+)/.exec(headers)?.[1]
  const whole = length !== undefined
    ? body.length === Number(length)
    : /\r\ntransfer-encoding: *chunked/.test(headers)
    ? body.subarray(body.length - 5).toString("latin1") === "0\r\n\r\n"
    : atEnd
  return { status: Number(status), whole, body: body.toString("utf8") }
}

/** Runs a metrics plan against `port`. */
export const runHttp = (plan: HttpPlan, port: number): Effect.Effect<Seen> => {
  const chunks: Array<Buffer> = []
  let received = 0
  return Effect.map(
    drive(port, plan.boundMs, ({ abandon, later, sent, socket }) => ({
      onConnect: () => {
        socket.write(plan.request, sent)
        if (plan.abandonAfterMs !== undefined) later(plan.abandonAfterMs, abandon)
      },
      onData: (chunk) => {
        received += chunk.length
        if (received <= bounds.maxHttpAnswer) chunks.push(chunk)
        else abandon()
      }
    })),
    ({ end, ms }) => {
      const answer = parseHttp(Buffer.concat(chunks), end === "fin")
      const outcome = Verdict.http({
        statuses: plan.statuses,
        status: answer.status,
        whole: answer.whole,
        wrongBody: plan.metricsBody && answer.status === 200 &&
          !answer.body.includes("echo_connections_accepted_total"),
        end
      })
      return {
        outcome,
        end,
        expected: 0,
        received,
        mismatchAt: undefined,
        sentSha256: undefined,
        receivedSha256: undefined,
        sentAll: true,
        status: answer.status,
        ms
      }
    }
  )
}
