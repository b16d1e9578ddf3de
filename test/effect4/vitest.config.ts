/**
 * The suite on the Effect 4 line: the same test files, with `effect`, `@effect/*` and `vitest`
 * taken from this workspace's node_modules and `#line/*` from src/effect4 (the `effect4`
 * condition). Run through `npm run test:effect4`.
 */
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"
import base from "../../vitest.config.js"

const anchor = fileURLToPath(new URL("./package.json", import.meta.url))
const here = fileURLToPath(new URL("./node_modules/", import.meta.url))
const shim = fileURLToPath(new URL("./vitest.ts", import.meta.url))
const redirected = /^(effect|@effect\/(vitest|platform-node|platform-node-shared)|fast-check)(\/|$)/

export default defineConfig({
  root: fileURLToPath(new URL("../..", import.meta.url)),
  resolve: { conditions: ["effect4"] },
  ssr: { resolve: { conditions: ["effect4"], externalConditions: ["effect4"] } },
  plugins: [{
    name: "effect4-line",
    enforce: "pre",
    async resolveId(id, importer, options) {
      // The suite's `@effect/vitest` is the shim, whose own import is the real one.
      if (id === "@effect/vitest" && importer !== shim) return shim
      if (!redirected.test(id) || importer?.startsWith(here)) return null
      return this.resolve(id, anchor, { ...options, skipSelf: true })
    }
  }],
  test: {
    ...base.test,
    setupFiles: [fileURLToPath(new URL("./line.ts", import.meta.url))],
    // The files that run on this line so far; the rest of the suite is still written for Effect 3.
    include: ["test/Lines.test.ts", "test/*.effect4.test.ts"],
    exclude: ["test/effect4/node_modules/**", "node_modules/**"]
  }
})
