/**
 * Usage errors as a user sees them: one line naming what was wrong, a hint to `--help`, exit
 * status 2, nothing on stdout; found in this process by the command line the binary runs.
 */
import { timeoutFail } from "#line/runtime"
import { withEnv } from "#test-line/commandLine"
import { NodeFileSystem } from "@effect/platform-node"
import { expect } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as Cli from "../../src/Cli.js"
import { KernelLimits } from "../../src/index.js"

/** Every usage error: one line naming what was wrong (each of `fragments`), the hint, exit status 2, no stack. */
export const expectUsage = (
  result: { status: number | null; stderr: string; stdout: string },
  ...fragments: Array<string>
) => {
  expect(result.status).toBe(2)
  const lines = result.stderr.trimEnd().split("\n")
  expect(lines).toHaveLength(2)
  expect(lines[0]).toMatch(/^effect-tcp-echo: /)
  for (const fragment of fragments) expect(lines[0]).toContain(fragment)
  expect(lines[1]).toMatch(/^Try 'effect-tcp-echo( \w+)? --help'\.$/)
  expect(result.stdout).toBe("")
}

/**
 * A usage error found by the command line the binary runs, run in this process (a subprocess
 * costs most of a second): what it prints, and that it is a usage error (exit status 2).
 */
export const usageError = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Cli.program("test")(["node", "bin.js", ...args]).pipe(
    Effect.provide(Layer.provideMerge(KernelLimits.layer, NodeFileSystem.layer)),
    withEnv(env),
    // A check that lets a bad value through starts a server instead: fail rather than wait.
    timeoutFail({ duration: "20 seconds", onTimeout: () => new Error(`${args.join(" ")} was not refused`) }),
    Effect.flip,
    Effect.runPromise
  ).then((failure) => {
    expect(failure).toBeInstanceOf(Cli.CliFailure)
    const { reason, text } = failure as Cli.CliFailure
    expect(reason).toBe("Usage")
    return { status: 2, stdout: "", stderr: text }
  })
