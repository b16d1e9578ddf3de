/**
 * The simulated network against loopback: the same scenarios, with the same server and
 * invariants, give the same observable outcome: the bytes each peer got back, and how each
 * connection ended. Where the two cannot agree on the bytes (how much of an echo a stalled peer's
 * buffers held when it was cut off depends on the kernel's buffer sizes, which Linux tunes as it
 * goes), they must agree on whether the echo was whole. See docs/simulation.md.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestKit } from "../src/index.js"

const timeouts = { shutdownTimeout: "400 millis", cleanupTimeout: "500 millis" } as const

const bytes = (n: number, seed = 1) => new Uint8Array(n).map((_, i) => (i * 31 + seed) & 0xff)

interface Case {
  readonly name: string
  readonly operations: ReadonlyArray<TestKit.Operation>
  /** `exact`: the same bytes back; `whole`: only whether each echo was whole. */
  readonly compare: "exact" | "whole"
}

const cases: ReadonlyArray<Case> = [
  {
    name: "an orderly client gets its echo, then EOF",
    operations: [{ _tag: "Exchange", data: bytes(3000) }],
    compare: "exact"
  },
  {
    name: "several clients get each their own echo",
    operations: [
      { _tag: "Exchange", data: bytes(1) },
      { _tag: "Exchange", data: bytes(16384, 2) },
      { _tag: "Exchange", data: bytes(700, 3) }
    ],
    compare: "exact"
  },
  {
    name: "a half-close with nothing sent: an empty echo, then EOF",
    operations: [{ _tag: "Open" }, { _tag: "HalfClose", peer: 0 }],
    compare: "exact"
  },
  {
    name: "a peer still talking at shutdown keeps its echo so far, then is reset at the deadline",
    operations: [{ _tag: "Open" }, { _tag: "Send", peer: 0, data: bytes(5000) }, { _tag: "Shutdown" }, {
      _tag: "Wait",
      millis: 1000
    }],
    compare: "exact"
  },
  {
    name: "a peer that half-closes during the drain gets its whole echo",
    operations: [{ _tag: "Open" }, { _tag: "Send", peer: 0, data: bytes(3000) }, { _tag: "Shutdown" }, {
      _tag: "HalfClose",
      peer: 0
    }],
    compare: "exact"
  },
  {
    name: "a peer that resets itself leaves the next client alone",
    operations: [{ _tag: "Open" }, { _tag: "Send", peer: 0, data: bytes(100) }, { _tag: "Reset", peer: 0 }, {
      _tag: "Exchange",
      data: bytes(50)
    }],
    compare: "whole"
  },
  {
    name: "a peer that leaves mid-write leaves the next client alone",
    operations: [{ _tag: "Open" }, { _tag: "Send", peer: 0, data: bytes(2000) }, { _tag: "Close", peer: 0 }, {
      _tag: "Exchange",
      data: bytes(10)
    }],
    compare: "whole"
  },
  {
    name: "a burst of connections does not disturb an orderly client",
    operations: [{ _tag: "Flood", peers: 10 }, { _tag: "Exchange", data: bytes(1000) }],
    compare: "exact"
  },
  {
    name: "a stalled peer with more than the buffers hold is cut off at the deadline with a reset",
    operations: [
      { _tag: "Open" },
      { _tag: "Stall", peer: 0 },
      { _tag: "Send", peer: 0, data: bytes(8 * 1024 * 1024) },
      { _tag: "HalfClose", peer: 0 },
      { _tag: "Shutdown" },
      { _tag: "Wait", millis: 1000 }
    ],
    compare: "whole"
  }
]

/** What can be compared of a run: per peer, the bytes back (or only whether they were all), and the end. */
const observed = (outcome: TestKit.Outcome, compare: Case["compare"]) =>
  outcome.peers.map((peer) => ({
    sent: peer.sent,
    received: compare === "exact" ? peer.received : peer.received === peer.sent ? "whole" : "partial",
    ending: peer.ending
  }))

describe("the simulation agrees with loopback", () => {
  for (const { compare, name, operations } of cases) {
    it.live(name, () =>
      Effect.gen(function*() {
        const real = yield* TestKit.checkShutdown({ operations }, timeouts)
        const simulated = yield* TestKit.simulate({ scenario: { operations }, seed: 1 }, timeouts)
        expect(real.peers.length).toBeGreaterThan(0)
        expect(observed(simulated, compare)).toEqual(observed(real, compare))
      }))
  }
})
