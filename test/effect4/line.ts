// Set up before every test file of the Effect 4 line: fails at once if `effect` resolved to
// another major than this line's (a test passing on the wrong line proves nothing about it).
import * as Effect from "effect/Effect"

if (typeof (Effect as Record<string, unknown>)["callback"] !== "function" || "async" in Effect) {
  throw new Error("the Effect 4 line's suite loaded an `effect` that is not Effect 4")
}
