// Build step: every `#line/<module>` specifier the compiler left in dist/<dir> becomes a relative
// path into that line's own folder there, so that the published files need no `imports` map (which
// points at the sources) and every resolver (Node, bundlers, node10 typings) reads them as written.
// Usage: node src/internal/lines.mjs <dist root> <line folder>   e.g. dist/src effect3
import fs from "node:fs"
import path from "node:path"

const [root, line] = process.argv.slice(2)
if (root === undefined || line === undefined) {
  console.error("usage: node src/internal/lines.mjs <dist root> <line folder>")
  process.exit(2)
}
const walk = (dir) =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(path.join(dir, entry.name)) : [path.join(dir, entry.name)]
  )
const target = path.join(root, line)
if (!fs.existsSync(target)) {
  console.error(`lines.mjs: ${target} does not exist: nothing was built for ${line}`)
  process.exit(1)
}
let rewritten = 0
for (const file of walk(root).filter((name) => /\.(js|d\.ts)$/.test(name))) {
  const text = fs.readFileSync(file, "utf8")
  let relative = path.relative(path.dirname(file), target).split(path.sep).join("/")
  if (!relative.startsWith(".")) relative = `./${relative}`
  const next = text.replace(
    /(["'])#line\/([\w/]+)\1/g,
    (_, quote, module) => `${quote}${relative}/${module}.js${quote}`
  )
  if (next !== text) {
    fs.writeFileSync(file, next)
    rewritten++
  }
}
console.log(`lines.mjs: ${rewritten} file(s) in ${root} now import ${line} by path`)
