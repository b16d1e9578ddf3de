/**
 * The examples run as a reader runs them (`npx tsx examples/<file>.ts`), end by themselves, and
 * show what their header says they show.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")

const runExample = (file: string) => {
  const result = spawnSync(process.execPath, ["--import", "tsx", path.join("examples", file)], {
    cwd: root,
    env: { ...process.env, NO_COLOR: "1" },
    encoding: "utf8",
    timeout: 60_000
  })
  return { status: result.status, output: result.stdout + result.stderr }
}

describe("examples", () => {
  it("uppercase-lines: lines come back uppercased, a long one ends its connection, and shutdown says BYE", () => {
    const { output, status } = runExample("uppercase-lines.ts")
    expect(status, output).toBe(0)
    expect(output).toContain(`-> "HELLO\\nWORLD\\n"`)
    expect(output).toContain(`-> "SHORT\\nERR line longer than 16\\n"`)
    expect(output).toContain(`"LAST LINE\\nBYE server shutting down\\n", then the end`)
  })

  it("length-prefixed: each frame comes back reversed, whole, then the end", () => {
    const { output, status } = runExample("length-prefixed.ts")
    expect(status, output).toBe(0)
    expect(output).toContain(`answer: \\"olleh\\"`)
    expect(output).toContain(`answer: \\"dexiferp-htgnel\\"`)
    expect(output).toContain("37 bytes of answers, then the end")
  })

  it("layer-with-http: one layer graph serves the echo and an HTTP health check", () => {
    const { output, status } = runExample("layer-with-http.ts")
    expect(status, output).toBe(0)
    expect(output).toContain(`echo replied "hello, echo\\n"`)
    expect(output).toMatch(/GET \/health -> \{"echo":"127\.0\.0\.1:\d+","connections":1\}/)
  })

  it("simulation-finds-a-race: the race is found, shrunk, replayed exactly, and the fix holds", () => {
    const { output, status } = runExample("simulation-finds-a-race.ts")
    expect(status, output).toBe(0)
    expect(output).toMatch(/a clean end after \d+ of \d+ bytes: a cut-off answer that looks complete/)
    expect(output).toMatch(/replayed: the same run, trace [0-9a-f]{8}/)
    expect(output).toContain("with the writes awaited: the property holds for 500 runs")
  })

  it("property-test-handler: the handler's property holds", () => {
    const { output, status } = runExample("property-test-handler.ts")
    expect(status, output).toBe(0)
    expect(output).toContain("property held for 20 runs")
  })

  it("rpc-over-tcp: a real RpcClient is answered, and a shutdown with a stalled client ends at its deadline", () => {
    const { output, status } = runExample("rpc-over-tcp.ts")
    expect(status, output).toBe(0)
    expect(output).toContain(`Shout("hello") -> "HELLO"`)
    expect(output).toContain(`Shout("over tcp") -> "OVER TCP"`)
    expect(output).toContain("shutting down: waiting up to 1s for 2 connection(s)")
    expect(output).toContain("closed 1 connection(s) at the shutdown deadline")
    expect(output).toContain("connections cut off at the deadline: 1")
    expect(output).toContain("shutdown returned after")
  })
})
