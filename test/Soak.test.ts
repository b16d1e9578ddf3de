/**
 * The soak's own decisions (test/soak/), pinned without running it: a soak that called a short
 * answer complete, or a leak none, would pass while the server breaks its promise. The soak
 * itself runs only by hand (`npm run soak`): it is long, and loads the machine on purpose.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Args from "./soak/args.js"
import * as Peers from "./soak/peers.js"
import * as Random from "./soak/random.js"
import * as Verdict from "./soak/verdict.js"

describe("an echo peer's verdict", () => {
  const seen = (over: Partial<Verdict.EchoSeen>): Verdict.EchoSeen => ({
    expected: 100,
    received: 100,
    mismatch: false,
    end: "fin",
    ...over
  })

  it("the whole echo then a FIN is complete; then a RST, complete and reset", () => {
    expect(Verdict.echo(seen({}))).toBe("complete")
    expect(Verdict.echo(seen({ end: "reset" }))).toBe("complete+reset")
    expect(Verdict.echo(seen({ expected: 0, received: 0 }))).toBe("complete")
  })

  it("a short echo then a FIN is the undetected loss; then a RST, a detected reset", () => {
    expect(Verdict.echo(seen({ received: 99 }))).toBe("short+FIN")
    expect(Verdict.echo(seen({ received: 0 }))).toBe("short+FIN")
    expect(Verdict.echo(seen({ received: 99, end: "reset" }))).toBe("reset")
  })

  it("a wrong byte, or more bytes than sent, is corruption whatever the end", () => {
    for (const end of ["fin", "reset", "timeout", "abandoned", "refused"] as const) {
      expect(Verdict.echo(seen({ mismatch: true, end }))).toBe("corrupt")
    }
    expect(Verdict.echo(seen({ received: 101 }))).toBe("corrupt")
  })

  it("a bound passed is a hang, even with every byte back; other ends as named", () => {
    expect(Verdict.echo(seen({ end: "timeout" }))).toBe("hang")
    expect(Verdict.echo(seen({ end: "refused", received: 0 }))).toBe("refused")
    expect(Verdict.echo(seen({ end: "abandoned", received: 3 }))).toBe("abandoned")
    expect(Verdict.echo(seen({ end: { error: "ETIMEDOUT" } }))).toBe("error")
  })

  it("which outcomes fail the run", () => {
    expect([...Verdict.failures].sort()).toEqual(["corrupt", "error", "hang", "short+FIN"])
  })
})

describe("a malformed PROXY header's verdict", () => {
  const seen = (over: Partial<Verdict.EchoSeen>): Verdict.EchoSeen => ({
    expected: 10,
    received: 0,
    mismatch: false,
    end: "reset",
    ...over
  })

  it("refused with a RST before any byte: rejected, as documented", () => {
    expect(Verdict.malformedHeader(seen({}))).toBe("rejected")
  })

  it("served: accepted; nothing back then a FIN: the undetected loss", () => {
    expect(Verdict.malformedHeader(seen({ received: 10, end: "fin" }))).toBe("accepted")
    expect(Verdict.malformedHeader(seen({ end: "fin" }))).toBe("short+FIN")
    expect(Verdict.malformedHeader(seen({ received: 4 }))).toBe("reset")
  })
})

describe("an HTTP peer's verdict", () => {
  const seen = (over: Partial<Verdict.HttpSeen>): Verdict.HttpSeen => ({
    statuses: [200],
    status: 200,
    whole: true,
    wrongBody: false,
    end: "fin",
    ...over
  })

  it("a whole answer with a right status is complete; a wrong status or body, corrupt", () => {
    expect(Verdict.http(seen({}))).toBe("complete")
    expect(Verdict.http(seen({ end: "reset" }))).toBe("complete+reset")
    expect(Verdict.http(seen({ status: 500 }))).toBe("corrupt")
    expect(Verdict.http(seen({ wrongBody: true }))).toBe("corrupt")
    expect(Verdict.http(seen({ statuses: "any", status: 431 }))).toBe("complete")
  })

  it("an answer cut short is closed (HTTP's framing shows it), or reset; a bound passed, a hang", () => {
    expect(Verdict.http(seen({ whole: false }))).toBe("closed")
    expect(Verdict.http(seen({ whole: false, status: undefined }))).toBe("closed")
    expect(Verdict.http(seen({ whole: false, end: "reset" }))).toBe("reset")
    expect(Verdict.http(seen({ end: "timeout" }))).toBe("hang")
  })

  it("an answer is whole by its Content-Length, its last chunk, or the end of input", () => {
    const head = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
    expect(Peers.parseHttp(Buffer.from(head + "ok\n"), false)).toEqual({ status: 200, whole: true, body: "ok\n" })
    expect(Peers.parseHttp(Buffer.from(head + "ok"), true).whole).toBe(false)
    const chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n"
    expect(Peers.parseHttp(Buffer.from(chunked), true).whole).toBe(false)
    expect(Peers.parseHttp(Buffer.from(chunked + "0\r\n\r\n"), false).whole).toBe(true)
    const bare = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"
    expect(Peers.parseHttp(Buffer.from(bare), false).whole).toBe(false)
    expect(Peers.parseHttp(Buffer.from(bare), true)).toEqual({ status: 400, whole: true, body: "" })
    expect(Peers.parseHttp(Buffer.from("HTTP/1.1 200 OK\r\n"), true)).toEqual({ status: 200, whole: false, body: "" })
    expect(Peers.parseHttp(Buffer.from("garbage"), true).status).toBeUndefined()
  })
})

describe("the leak rules", () => {
  const baseline = { primary: 20, worker: 18 }
  const margins: Verdict.Margins = { fds: 4, rssBytes: 32 * 2 ** 20, rssFraction: 0.25 }
  const MiB = 2 ** 20
  const rest = (pid: number, over: Partial<Verdict.AtRest>): Verdict.AtRest => ({
    pid,
    role: "worker",
    at: 0,
    fds: 18,
    connections: 0,
    rssBytes: 70 * MiB,
    ...over
  })

  it("a process at its baseline, with RSS that came back, leaks nothing", () => {
    expect(Verdict.leaks(
      [
        rest(1, { rssBytes: 60 * MiB }),
        rest(1, { rssBytes: 90 * MiB }),
        rest(1, { fds: 22, rssBytes: 100 * MiB })
      ],
      baseline,
      margins
    )).toEqual([])
  })

  it("any connection held at rest is a leak", () => {
    const found = Verdict.leaks([rest(1, {}), rest(1, { connections: 1 })], baseline, margins)
    expect(found.map((l) => l.what)).toEqual(["connections"])
  })

  it("descriptors past the role's baseline plus the margin are a leak", () => {
    expect(Verdict.leaks([rest(1, { fds: 23 })], baseline, margins).map((l) => l.what)).toEqual(["fds"])
    expect(Verdict.leaks([rest(1, { role: "primary", fds: 23 })], baseline, margins)).toEqual([])
    expect(Verdict.leaks([rest(1, { role: "primary", fds: 25 })], baseline, margins).map((l) => l.what)).toEqual([
      "fds"
    ])
  })

  it("RSS at rest that keeps past the margin from the second time to the last is a leak, over three times", () => {
    const grown = [rest(1, {}), rest(1, { rssBytes: 80 * MiB }), rest(1, { rssBytes: 80 * MiB + 33 * MiB })]
    expect(Verdict.leaks(grown, baseline, margins).map((l) => l.what)).toEqual(["rss"])
    // The first time at rest is warm-up; two times are too few to judge.
    expect(Verdict.leaks([rest(1, { rssBytes: 10 * MiB }), rest(1, { rssBytes: 200 * MiB })], baseline, margins))
      .toEqual([])
    // The fraction wins when it is larger than the bytes.
    const big = [rest(1, {}), rest(1, { rssBytes: 400 * MiB }), rest(1, { rssBytes: 490 * MiB })]
    expect(Verdict.leaks(big, baseline, margins)).toEqual([])
  })

  it("each process is judged on its own samples", () => {
    const found = Verdict.leaks([rest(1, {}), rest(2, { fds: 30 }), rest(1, {})], baseline, margins)
    expect(found.map((l) => [l.pid, l.what])).toEqual([[2, "fds"]])
  })
})

describe("the soak's random choices", () => {
  it("a stream is the same for the same seed and name, and differs by either", () => {
    const draw = (seed: number, name: string) => {
      const r = Random.stream(seed, name)
      return Array.from({ length: 5 }, () => r.next())
    }
    expect(draw(7, "peer:1")).toEqual(draw(7, "peer:1"))
    expect(draw(7, "peer:1")).not.toEqual(draw(7, "peer:2"))
    expect(draw(7, "peer:1")).not.toEqual(draw(8, "peer:1"))
    expect(Random.bytes(7, "p", 1000).equals(Random.bytes(7, "p", 1000))).toBe(true)
    expect(Random.bytes(7, "p", 64).equals(Random.bytes(7, "q", 64))).toBe(false)
  })

  it("integers stay within their bounds, both ends reached", () => {
    const r = Random.stream(1, "bounds")
    const ints = Array.from({ length: 2000 }, () => r.int(3, 6))
    const logs = Array.from({ length: 2000 }, () => r.logInt(0, 3))
    expect(new Set(ints)).toEqual(new Set([3, 4, 5, 6]))
    expect(new Set(logs)).toEqual(new Set([0, 1, 2, 3]))
  })

  it("plans keep their bounds: payload, pauses below the idle timeout, a bound past every wait", () => {
    for (let i = 1; i <= 400; i++) {
      for (const proxy of [false, true]) {
        const plan = Peers.plan(3, i, proxy, 5000)
        expect(plan.kind).toBe(Peers.kindOf(3, i))
        if (plan._tag === "Http") {
          expect(plan.boundMs).toBeGreaterThanOrEqual(Peers.bounds.marginMs + (plan.abandonAfterMs ?? 0))
          continue
        }
        expect(plan.payload.length).toBeLessThanOrEqual(Peers.bounds.maxPayload)
        expect(plan.writes.reduce((sum, w) => sum + w.bytes, 0)).toBe(plan.payload.length)
        for (const w of plan.writes) expect(w.pauseMs).toBeLessThanOrEqual(Peers.bounds.maxPauseMs)
        if (plan.read._tag !== "Stall") {
          expect(plan.halfCloseAfterMs ?? 0).toBeLessThanOrEqual(Peers.bounds.maxPauseMs)
        }
        expect(plan.malformedHeader).toBe(proxy && plan.kind === "proxy-garbage")
        expect(plan.header.length > 0).toBe(proxy)
        const waits = plan.writes.reduce((sum, w) => sum + w.pauseMs, 0) + (plan.halfCloseAfterMs ?? 0) +
          (plan.resetAfterMs ?? 0) +
          (plan.read._tag === "Stall" ? plan.read.ms : plan.read._tag === "Slow" ? plan.read.budgetMs : 0)
        expect(plan.boundMs).toBeGreaterThanOrEqual(Peers.bounds.marginMs + waits)
      }
    }
  })

  it("a burst's peers: 1 to 8 MiB of the shared bytes, half-closed at once, stalled, bounded past the stall", () => {
    const shared = Random.bytes(3, "burst", Peers.burst.maxPayload)
    const sizes = new Set<number>()
    for (let j = 0; j < Peers.burst.peers; j++) {
      const plan = Peers.burstPlan(3, 1, j, shared, false, 5000, 2_500)
      expect(plan.payload.length).toBeGreaterThanOrEqual(2 ** 20)
      expect(plan.payload.length).toBeLessThanOrEqual(Peers.burst.maxPayload)
      expect(plan.payload.equals(shared.subarray(0, plan.payload.length))).toBe(true)
      expect(plan.halfCloseAfterMs).toBe(0)
      expect(plan.read).toEqual({ _tag: "Stall", ms: 2_500, then: "read" })
      expect(plan.boundMs).toBeGreaterThanOrEqual(Peers.bounds.marginMs + 2_500)
      expect(plan.header.length).toBe(0)
      expect(Peers.burstPlan(3, 1, j, shared, true, 5000, 2_500).header.length).toBeGreaterThan(0)
      sizes.add(plan.payload.length)
    }
    expect(sizes.size).toBeGreaterThan(1)
  })
})

describe("the soak's command line", () => {
  it("defaults, and each option read", () => {
    expect(Args.parse([], 42)).toEqual({
      _tag: "Run",
      options: { minutes: 5, seed: 42, peers: 16, chaos: ["kill", "term", "twice"], build: true }
    })
    expect(
      Args.parse([
        "--minutes",
        "0.5",
        "--seed",
        "9007199254740991",
        "--peers",
        "3",
        "--chaos",
        "twice,term",
        "--no-build"
      ], 1)
    )
      .toEqual({
        _tag: "Run",
        options: { minutes: 0.5, seed: 9007199254740991, peers: 3, chaos: ["twice", "term"], build: false }
      })
    expect(Args.parse(["--chaos", "none"], 1)).toMatchObject({ options: { chaos: [] } })
    expect(Args.parse(["--help"], 1)).toEqual({ _tag: "Help" })
  })

  it("bad arguments get one line naming the option and the value", () => {
    const message = (args: ReadonlyArray<string>) => {
      const parsed = Args.parse(args, 1)
      return parsed._tag === "Invalid" ? parsed.message : undefined
    }
    expect(message(["--minutes", "0"])).toMatch(/^--minutes must be .* not "0"$/)
    expect(message(["--minutes", "2h"])).toMatch(/not "2h"$/)
    expect(message(["--minutes", "1441"])).toMatch(/not "1441"$/)
    expect(message(["--seed", "-1"])).toMatch(/^--seed must be .* not "-1"$/)
    expect(message(["--seed", "9007199254740992"])).toMatch(/not "9007199254740992"$/)
    expect(message(["--peers", "0"])).toMatch(/^--peers must be .* not "0"$/)
    expect(message(["--peers", "257"])).toMatch(/not "257"$/)
    expect(message(["--chaos", "kill,kill"])).toMatch(/^--chaos must be .*"kill,kill"$/)
    expect(message(["--chaos", "boom"])).toMatch(/"boom"$/)
    expect(message(["--chaos", ""])).toMatch(/""$/)
    expect(message(["--bogus"])).toMatch(/bogus/)
    expect(message(["extra"])).toMatch(/extra/)
    for (const args of [["--minutes", "0"], ["--bogus"]]) expect(message(args)).not.toContain("\n")
  })
})
