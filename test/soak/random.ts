/**
 * The soak's random choices, reproducible from its seed: each stream (a peer by its number, the
 * chaos schedule, a server start) draws from its own generator, seeded from the run's seed and the
 * stream's name, so that one peer's choices do not depend on how many draws another made first.
 * What the kernel and the scheduler do with those choices is not reproducible; the choices are.
 */
import { createCipheriv, createHash } from "node:crypto"

/** A generator of one stream: xoshiro128** over four 32-bit words. */
export interface Random {
  /** Uniform in [0, 1). */
  readonly next: () => number
  /** An integer uniform in [min, max], both included. */
  readonly int: (min: number, max: number) => number
  /** True with probability `p`. */
  readonly chance: (p: number) => boolean
  /** One of `items`, each with its weight. */
  readonly weighted: <A>(items: ReadonlyArray<readonly [A, number]>) => A
  /** An integer in [min, max] whose logarithm is uniform: as many small as large sizes. */
  readonly logInt: (min: number, max: number) => number
}

/** The generator of stream `name` of the run seeded `seed`. */
export const stream = (seed: number, name: string): Random => {
  const digest = createHash("sha256").update(`${seed}:${name}`).digest()
  const s: Array<number> = [
    digest.readUInt32LE(0),
    digest.readUInt32LE(4),
    digest.readUInt32LE(8),
    digest.readUInt32LE(12)
  ]
  // All zero is xoshiro's one fixed point; SHA-256 gives it with probability 2^-128.
  if (!s.some((w) => w !== 0)) s[0] = 1
  const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0
  const u32 = (): number => {
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0
    const t = (s[1]! << 9) >>> 0
    s[2] = (s[2]! ^ s[0]!) >>> 0
    s[3] = (s[3]! ^ s[1]!) >>> 0
    s[1] = (s[1]! ^ s[2]!) >>> 0
    s[0] = (s[0]! ^ s[3]!) >>> 0
    s[2] = (s[2]! ^ t) >>> 0
    s[3] = rotl(s[3]!, 11)
    return result
  }
  const next = () => u32() / 2 ** 32
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1))
  return {
    next,
    int,
    chance: (p) => next() < p,
    weighted: (items) => {
      const total = items.reduce((sum, [, w]) => sum + w, 0)
      let x = next() * total
      for (const [item, w] of items) {
        if (x < w) return item
        x -= w
      }
      return items[items.length - 1]![0]
    },
    // exp(...) is in [min + 1, max + 2): its floor less one is in [min, max].
    logInt: (min, max) => Math.floor(Math.exp(Math.log(min + 1) + next() * Math.log((max + 2) / (min + 1)))) - 1
  }
}

/**
 * `length` pseudo-random bytes of stream `name`: AES-128-CTR's key stream, fast enough for
 * megabytes per peer, and the same bytes for the same seed.
 */
export const bytes = (seed: number, name: string, length: number): Buffer => {
  const key = createHash("sha256").update(`${seed}:${name}:bytes`).digest()
  const cipher = createCipheriv("aes-128-ctr", key.subarray(0, 16), key.subarray(16, 32))
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()])
}
