import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Client } from "../src/index.js"

describe("Client.connect", () => {
  for (
    const [options, option] of [
      [{ port: 99999 }, "port"],
      [{ port: -1 }, "port"],
      [{ port: 0 }, "port"],
      [{ port: 80.5 }, "port"],
      [{ host: "::1", port: 7 }, "host"]
    ] as const
  ) {
    it.effect(`an invalid ${option} (${JSON.stringify(options)}) is an InvalidOption error, not a crash`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Client.connect(options))
        expect(error.reason).toBe("InvalidOption")
        expect(error.option).toBe(option)
        expect(error.message).toMatch(new RegExp(`^invalid ${option}: .+ \\(expected .+\\)$`))
      }).pipe(Effect.scoped))
  }
})
