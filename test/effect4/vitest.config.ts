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

// Files for the Effect 3 line alone: the Effect 3 twins of test/*.effect4.test.ts (the platform
// interop on @effect/platform and @effect/rpc 0.76), the protocols test (its rpc protocol is
// @effect/rpc 0.76's), the Effect 3 package and its docs (ApiDocs, Docs, Package; the Effect 4
// package is checked by check:package), and the two still written for that line alone
// (Deploying, Soak).
const effect3Only = [
  "test/PlatformSocketServer.test.ts",
  "test/Rpc.test.ts",
  "test/Protocols.test.ts",
  "test/ApiDocs.test.ts",
  "test/Deploying.test.ts",
  "test/Docs.test.ts",
  "test/Package.test.ts",
  "test/Soak.test.ts"
]

export default defineConfig({
  root: fileURLToPath(new URL("../..", import.meta.url)),
  resolve: { conditions: ["effect4"] },
  ssr: { resolve: { conditions: ["effect4"], externalConditions: ["effect4"] } },
  plugins: [{
    name: "effect4-line",
    enforce: "pre",
    async resolveId(id, importer, options) {
      // The suite's `@effect/vitest` is the shim (which imports the real one by path).
      if (id === "@effect/vitest") return shim
      if (!redirected.test(id) || importer?.startsWith(here)) return null
      return this.resolve(id, anchor, { ...options, skipSelf: true })
    }
  }],
  test: {
    ...base.test,
    setupFiles: [fileURLToPath(new URL("./line.ts", import.meta.url))],
    include: ["test/**/*.test.ts"],
    // ECHO_EFFECT4_FILES=test/X.test.ts,...: only those (while a file is being ported).
    ...(process.env.ECHO_EFFECT4_FILES === undefined ? {} : { include: process.env.ECHO_EFFECT4_FILES.split(",") }),
    // What tests run as subprocesses (the binary, fixtures, examples) is this line's too.
    env: {
      ECHO_DIST: "dist/effect4",
      NODE_OPTIONS: [process.env.NODE_OPTIONS, `--import ${fileURLToPath(new URL("./register.mjs", import.meta.url))}`]
        .filter((option) => option !== undefined && option !== "").join(" ")
    },
    exclude: [
      "test/effect4/node_modules/**",
      "node_modules/**",
      ...(process.env.ECHO_EFFECT4_FILES === undefined ? effect3Only : [])
    ]
  }
})
