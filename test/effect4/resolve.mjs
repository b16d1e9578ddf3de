// The resolve hook test/effect4/register.mjs installs: the same redirect as vitest.config.ts's.
const anchor = new URL("./package.json", import.meta.url).href
const here = new URL("./node_modules/", import.meta.url).href
const redirected = /^(effect|@effect\/(platform-node|platform-node-shared|vitest)|vitest)(\/|$)/

export async function resolve(specifier, context, next) {
  const conditions = context.conditions.includes("effect4") ? context.conditions : [...context.conditions, "effect4"]
  if (redirected.test(specifier) && !(context.parentURL ?? "").startsWith(here)) {
    return next(specifier, { ...context, conditions, parentURL: anchor })
  }
  return next(specifier, { ...context, conditions })
}
