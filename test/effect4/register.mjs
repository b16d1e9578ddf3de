// `node --import ./test/effect4/register.mjs ...`: a process of the Effect 4 line (a test's
// subprocess, a fixture, an example run with tsx) resolves `effect` and `@effect/platform-node`
// from this workspace, wherever the importing file is (dist/effect4 and src/ lie under the root,
// whose node_modules hold Effect 3), and `#line/*` from src/effect4.
import { register } from "node:module"

register("./resolve.mjs", import.meta.url)
