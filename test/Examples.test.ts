/**
 * The examples run as a reader runs them (`npx tsx examples/<file>.ts`), end by themselves, and
 * show what their header says they show. Each runs on the lines its code is written for: those
 * on `@effect/platform` or `@effect/rpc` (Effect 3's packages) on Effect 3 alone, the RPC one on
 * Effect 4 as its twin (`rpc-over-tcp.effect4.ts`, on effect/rpc), the rest on both.
 */
import { line, nodeFlags } from "#test-line/examples"
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")

/** An example's file on each line; absent on a line it is not written for. */
type Files = { readonly 3: string; readonly 4?: string }

const both = (file: string): Files => ({ 3: file, 4: file })

/** The test, run on the lines the example has a file for (reported as skipped on the others). */
const example = (files: Files) => it.skipIf(files[line] === undefined)

const runExample = (files: Files) => {
  const file = files[line]!
  const result = spawnSync(process.execPath, [...nodeFlags, "--import", "tsx", path.join("examples", file)], {
    cwd: root,
    env: { ...process.env, NO_COLOR: "1" },
    encoding: "utf8",
    timeout: 60_000
  })
  return { status: result.status, output: result.stdout + result.stderr }
}

describe("examples", () => {
  // Written on Effect 3's API (Either, effect's FastCheck, Effect.fork): no Effect 4 version yet.
  const uppercaseLines: Files = { 3: "uppercase-lines.ts" }
  example(uppercaseLines)(
    "uppercase-lines: lines come back uppercased, a long one ends its connection, and shutdown says BYE",
    () => {
      const { output, status } = runExample(uppercaseLines)
      expect(status, output).toBe(0)
      expect(output).toContain(`-> "HELLO\\nWORLD\\n"`)
      expect(output).toContain(`-> "SHORT\\nERR line longer than 16\\n"`)
      expect(output).toContain(`"LAST LINE\\nBYE server shutting down\\n", then the end`)
    }
  )

  const lengthPrefixed: Files = both("length-prefixed.ts")
  example(lengthPrefixed)("length-prefixed: each frame comes back reversed, whole, then the end", () => {
    const { output, status } = runExample(lengthPrefixed)
    expect(status, output).toBe(0)
    // Quoted as each line's default logger writes a message: escaped in Effect 3's logfmt, as is
    // in Effect 4's pretty output.
    expect(output).toMatch(/answer: \\?"olleh\\?"/)
    expect(output).toMatch(/answer: \\?"dexiferp-htgnel\\?"/)
    expect(output).toContain("37 bytes of answers, then the end")
  })

  // @effect/platform's HTTP server and client: Effect 3's packages.
  const layerWithHttp: Files = { 3: "layer-with-http.ts" }
  example(layerWithHttp)("layer-with-http: one layer graph serves the echo and an HTTP health check", () => {
    const { output, status } = runExample(layerWithHttp)
    expect(status, output).toBe(0)
    expect(output).toContain(`echo replied "hello, echo\\n"`)
    expect(output).toMatch(/GET \/health -> \{"echo":"127\.0\.0\.1:\d+","connections":1\}/)
  })

  const simulationFindsARace: Files = both("simulation-finds-a-race.ts")
  example(simulationFindsARace)(
    "simulation-finds-a-race: the race is found, shrunk, replayed exactly, and the fix holds",
    () => {
      const { output, status } = runExample(simulationFindsARace)
      expect(status, output).toBe(0)
      expect(output).toMatch(/a clean end after \d+ of \d+ bytes: a cut-off answer that looks complete/)
      expect(output).toMatch(/replayed: the same run, trace [0-9a-f]{8}/)
      expect(output).toContain("with the writes awaited: the property holds for 500 runs")
    }
  )

  const propertyTestHandler: Files = both("property-test-handler.ts")
  example(propertyTestHandler)("property-test-handler: the handler's property holds", () => {
    const { output, status } = runExample(propertyTestHandler)
    expect(status, output).toBe(0)
    expect(output).toContain("property held for 20 runs")
  })

  // @effect/rpc on Effect 3; effect/rpc in its Effect 4 twin.
  const rpcOverTcp: Files = { 3: "rpc-over-tcp.ts", 4: "rpc-over-tcp.effect4.ts" }
  example(rpcOverTcp)(
    "rpc-over-tcp: a real RpcClient is answered, and a shutdown with a stalled client ends at its deadline",
    () => {
      const { output, status } = runExample(rpcOverTcp)
      expect(status, output).toBe(0)
      expect(output).toContain(`Shout("hello") -> "HELLO"`)
      expect(output).toContain(`Shout("over tcp") -> "OVER TCP"`)
      expect(output).toContain("shutting down: waiting up to 1s for 2 connection(s)")
      expect(output).toContain("closed 1 connection(s) at the shutdown deadline")
      expect(output).toContain("connections cut off at the deadline: 1")
      expect(output).toContain("shutdown returned after")
    }
  )
})
