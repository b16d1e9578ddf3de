/**
 * Scenarios as data, and the arbitraries that generate them: the operations a peer (or the test)
 * can do, weighted so that most scenarios hold the case the key invariant is about, and printed
 * in a line a reader can follow (`Open, Send(0, 113 bytes), HalfClose(0)`).
 */
import { decodeDuration } from "#line/types"
import { Duration } from "effect"
import * as fc from "fast-check"
import * as Server from "../../Server.js"
import type { Generation, Operation, Scenario } from "../../TestKit.js"

/** The settings of a generation, with defaults applied. */
const settings = (options: Generation) => ({
  maxChunk: options.maxChunk ?? 16 * 1024,
  maxOperations: options.maxOperations ?? 24,
  deadlineMillis: Duration.toMillis(decodeDuration(options.shutdownTimeout ?? "400 millis")) +
    Duration.toMillis(decodeDuration(options.cleanupTimeout ?? Server.defaults.cleanupTimeout))
})

/**
 * Operations; with `faults`, also those only a simulation can play (descriptors running out);
 * with `crashes`, the forced and crash paths.
 *
 * @internal
 */
export const operation = (options: Generation = {}, faults = false): fc.Arbitrary<Operation> => {
  const { deadlineMillis, maxChunk } = settings(options)
  const peer = fc.nat({ max: 7 })
  // A length and a pattern: drawing every byte from fast-check costs more than the rest of a run.
  const bytes = (minLength: number) =>
    fc.tuple(fc.integer({ min: minLength, max: maxChunk }), fc.nat()).map(([length, seed]) => pattern(length, seed))
  const payload = options.protocol?.payload
  const data = (minLength: number) => payload === undefined ? bytes(minLength) : payload(maxChunk)
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant({ _tag: "Open" as const }) },
    { weight: 5, arbitrary: fc.record({ _tag: fc.constant("Exchange" as const), data: data(1) }) },
    { weight: 6, arbitrary: fc.record({ _tag: fc.constant("Send" as const), peer, data: data(0) }) },
    { weight: 5, arbitrary: fc.record({ _tag: fc.constant("HalfClose" as const), peer }) },
    { weight: 1, arbitrary: fc.record({ _tag: fc.constant("Read" as const), peer }) },
    { weight: 1, arbitrary: fc.record({ _tag: fc.constant("Stall" as const), peer }) },
    { weight: 1, arbitrary: fc.record({ _tag: fc.constant("Reset" as const), peer }) },
    { weight: 1, arbitrary: fc.record({ _tag: fc.constant("Close" as const), peer }) },
    {
      weight: 1,
      arbitrary: fc.record({ _tag: fc.constant("Flood" as const), peers: fc.integer({ min: 1, max: 8 }) })
    },
    ...(faults
      ? [{ weight: 1, arbitrary: fc.record({ _tag: fc.constant("Descriptors" as const), exhausted: fc.boolean() }) }]
      : []),
    { weight: 1, arbitrary: fc.constant({ _tag: "Shutdown" as const }) },
    // Only when asked for: another arbitrary in this oneof changes what every seed draws.
    ...(options.crashes === true
      ? [
        { weight: 1, arbitrary: fc.constant({ _tag: "ForceShutdown" as const }) },
        { weight: 1, arbitrary: fc.constant({ _tag: "ServerDefect" as const }) }
      ]
      : []),
    {
      weight: 5,
      arbitrary: fc.record({
        _tag: fc.constant("Wait" as const),
        millis: fc.oneof(fc.integer({ min: 1, max: 50 }), fc.constant(deadlineMillis + 50))
      })
    }
  )
}

// Stryker disable all: test data (any bytes that depend on their position serve), and a loop per
// byte instrumented for mutation must not cost more than the runs it feeds.
/** Bytes in which every byte depends on its position (xorshift from `seed`): a byte out of place shows. */
const pattern = (length: number, seed: number): Uint8Array => {
  const bytes = new Uint8Array(length)
  let x = (seed | 1) >>> 0
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    bytes[i] = x & 0xff
  }
  return bytes
}
// Stryker restore all

/**
 * Scenarios that start with a peer open (without one, most steps would have nothing to act on).
 * Shrinking removes operations and shrinks payloads; the same seed and path give the same one.
 *
 * @internal
 */
export const scenario = (options: Generation = {}, faults = false): fc.Arbitrary<Scenario> =>
  fc.array(operation(options, faults), { maxLength: settings(options).maxOperations, size: "max" }).map((rest) =>
    make([{ _tag: "Open" }, ...rest])
  )

/**
 * A scenario of `operations` that prints as its {@link format} (fast-check prints a failure's
 * counterexample that way, instead of every byte of its payloads).
 *
 * @internal
 */
export const make = (operations: ReadonlyArray<Operation>): Scenario => {
  const scenario: Scenario = { operations }
  const text = () => format(scenario)
  Object.defineProperty(scenario, "toString", { value: text, enumerable: false })
  Object.defineProperty(scenario, fc.toStringMethod, { value: text, enumerable: false })
  return scenario
}

/** @internal */
export const formatOperation = (op: Operation): string => {
  switch (op._tag) {
    case "Send":
      return `Send(${op.peer}, ${op.data.length} bytes)`
    case "Wait":
      return `Wait(${op.millis} ms)`
    case "Exchange":
      return `Exchange(${op.data.length} bytes)`
    case "Flood":
      return `Flood(${op.peers})`
    case "Descriptors":
      return `Descriptors(${op.exhausted ? "exhausted" : "back"})`
    case "Open":
    case "Shutdown":
    case "ForceShutdown":
    case "ServerDefect":
      return op._tag
    default:
      return `${op._tag}(${op.peer})`
  }
}

/** @internal */
export const format = (scenario: Scenario): string => scenario.operations.map(formatOperation).join(", ")
