/**
 * Protocol models from a pure answer: the conversation keeps what the peer sent, and asks the
 * user's function for the answer to all of it. The echo is the first of them.
 */
import type * as fc from "fast-check"
import type { Conversation, Protocol } from "../../TestKit.js"

/**
 * A protocol whose whole answer to everything sent is `answer(sent)`, as one unit: a server of
 * it never ends a conversation before the peer's half-close. What arrives before then must be a
 * prefix of `answer(sent so far)`, so `answer` must only ever extend its earlier answers as more
 * is sent (true of a byte-wise transform, or of an answer per whole line); a protocol whose
 * answer depends on what comes later, or on the end, needs a conversation of its own.
 *
 * @internal
 */
export const fromAnswer = (
  name: string,
  answer: (sent: Uint8Array) => Uint8Array,
  options: { readonly payload?: (maxLength: number) => fc.Arbitrary<Uint8Array> } = {}
): Protocol => ({
  name,
  ...(options.payload === undefined ? {} : { payload: options.payload }),
  conversation: (): Conversation => {
    const sent: Array<Uint8Array> = []
    // Asked after every send and at every end: computed once per change.
    let answered: Uint8Array | undefined
    const whole = () => (answered ??= answer(sent.length === 1 ? sent[0]! : Buffer.concat(sent)))
    return {
      feed: (chunk) => {
        sent.push(chunk)
        answered = undefined
      },
      expected: () => [whole()],
      complete: whole
    }
  }
})

/**
 * The echo: every byte back, unchanged.
 *
 * @internal
 */
export const echo: Protocol = fromAnswer("echo", (sent) => sent)
