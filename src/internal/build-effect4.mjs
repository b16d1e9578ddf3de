// Build step (`npm run build:effect4`): the Effect 4 line's package in dist/effect4, from the same
// sources as the Effect 3 line's (the root package): compiled with `#line/*` from src/effect4
// (tsconfig.build.effect4.json), `#line/*` rewritten into relative paths, the binary bundled with
// Effect 4 inside, and a package.json of its own: the next major of the root's version, Effect 4
// peers, Node >= 22.19. `npm pack dist/effect4` packs it. Not part of either package.
import { execFileSync } from "node:child_process"
import fs from "node:fs"
import { createRequire } from "node:module"
import path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const out = path.join(root, "dist/effect4")
const workspace = path.join(root, "test/effect4")
const run = (command, args) => execFileSync(command, args, { cwd: root, stdio: "inherit" })

fs.rmSync(out, { recursive: true, force: true })
run(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.effect4.json"])
run(process.execPath, [path.join(root, "src/internal/lines.mjs"), out, "effect4"])

const base = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"))
const [major, minor, patch] = base.version.split(".").map(Number)
const entries = Object.keys(base.exports).filter((key) => key !== "." && key !== "./package.json").map((key) =>
  key.slice(2)
)
const pkg = {
  name: base.name,
  // The next major: what the Effect ecosystem does for Effect 4, the Effect 3 line kept for fixes.
  version: `${major + 1}.${minor}.${patch}`,
  description: base.description,
  license: base.license,
  repository: base.repository,
  homepage: base.homepage,
  bugs: base.bugs,
  type: "module",
  engines: { node: ">=22.19" },
  bin: { [base.name]: "effect-tcp-echo" },
  main: "./index.js",
  types: "./index.d.ts",
  typesVersions: { "*": Object.fromEntries(entries.map((name) => [name, [`./${name}.d.ts`]])) },
  exports: {
    ".": { types: "./index.d.ts", default: "./index.js" },
    ...Object.fromEntries(entries.map((name) => [`./${name}`, { types: `./${name}.d.ts`, default: `./${name}.js` }])),
    "./package.json": "./package.json"
  },
  files: [
    "**/*.js",
    "**/*.d.ts",
    "**/*.map",
    "main.cjs",
    "main.cjs.cache",
    "effect-tcp-echo",
    "!Cli.*",
    "!internal/cli",
    "!internal/early.*",
    "!internal/flags.*",
    "!internal/heap.*",
    "!internal/makeCodeCache.*",
    "!internal/signals.*",
    "!internal/*.mjs"
  ],
  dependencies: base.dependencies,
  peerDependencies: {
    effect: `^${JSON.parse(fs.readFileSync(path.join(workspace, "node_modules/effect/package.json"), "utf8")).version}`,
    "@effect/platform-node": `^${
      JSON.parse(fs.readFileSync(path.join(workspace, "node_modules/@effect/platform-node/package.json"), "utf8"))
        .version
    }`
  },
  peerDependenciesMeta: { "@effect/platform-node": { optional: true } }
}
fs.writeFileSync(path.join(out, "package.json"), JSON.stringify(pkg, null, 2) + "\n")
// The binary: one file with Effect 4 inside, whose `simulate` runs an Effect 4 app's handler
// with the app's own `effect` values, as the Effect 3 line's does with Effect 3.
const esbuild = createRequire(import.meta.url)("esbuild")
const line4 = /^(effect|@effect\/platform-node|@effect\/platform-node-shared)(\/|$)/
await esbuild.build({
  entryPoints: [path.join(root, "src/main.ts")],
  bundle: true,
  platform: "node",
  target: "node22",
  format: "cjs",
  conditions: ["effect4"],
  outfile: path.join(out, "main.cjs"),
  logLevel: "warning",
  plugins: [{
    name: "effect4-line",
    setup(build) {
      // The version the binary prints is this package's.
      build.onResolve({ filter: /^\.\.\/package\.json$/ }, () => ({ path: path.join(out, "package.json") }))
      // Resolved again from the workspace, once (that resolution comes back here, marked).
      build.onResolve(
        { filter: line4 },
        (args) =>
          args.pluginData === "line4" || args.resolveDir.startsWith(path.join(workspace, "node_modules"))
            ? undefined
            : build.resolve(args.path, { kind: args.kind, resolveDir: workspace, pluginData: "line4" })
      )
    }
  }]
})
fs.copyFileSync(path.join(root, "src/bin.sh"), path.join(out, "effect-tcp-echo"))
fs.chmodSync(path.join(out, "effect-tcp-echo"), 0o755)
fs.chmodSync(path.join(out, "bin.js"), 0o755)

for (const file of ["README.md", "LICENSE"]) {
  if (fs.existsSync(path.join(root, file))) fs.copyFileSync(path.join(root, file), path.join(out, file))
}
// The code cache, made by this Node: V8 of another Node rejects it and the binary compiles from
// source, as it does without one.
run(process.execPath, [path.join(out, "internal/makeCodeCache.js")])
console.log(`build-effect4: ${pkg.name}@${pkg.version} in dist/effect4`)
