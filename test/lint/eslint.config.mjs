// Lint as the Effect repository lints its own packages: @effect/eslint-plugin's dprint rule with
// Effect's formatting settings, typescript-eslint (dprint sorts the imports). `npm run lint` (run by `npm test`);
// `npm run lint -- --fix` formats.
import * as effectEslint from "@effect/eslint-plugin"
import eslint from "@eslint/js"
import tseslint from "typescript-eslint"

export default tseslint.config(
  // test/.docs: the docs' blocks as test/Docs.test.ts extracts them, generated.
  { ignores: ["**/dist", "**/node_modules", "**/.stryker-tmp", "bench/results", "bench/build", "test/.docs"] },
  eslint.configs.recommended,
  tseslint.configs.recommended,
  effectEslint.configs.dprint,
  {
    files: ["**/*.ts", "**/*.mjs"],
    languageOptions: { globals: { Buffer: "readonly", console: "readonly", process: "readonly", URL: "readonly" } },
    rules: {
      "@effect/dprint": ["error", {
        config: {
          indentWidth: 2,
          lineWidth: 120,
          semiColons: "asi",
          quoteStyle: "alwaysDouble",
          trailingCommas: "never",
          operatorPosition: "maintain",
          "arrowFunction.useParentheses": "force"
        }
      }],
      "@typescript-eslint/array-type": ["error", { default: "generic", readonly: "generic" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-namespace": "off",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      // Effect's own services are declared as interfaces extending their shape (`interface X extends Y {}`).
      "@typescript-eslint/no-empty-object-type": ["error", { allowInterfaces: "with-single-extends" }],
      // `Effect.gen(function*() { ... })` without a yield is still an Effect.
      "require-yield": "off",
      "no-constant-condition": ["error", { checkLoops: false }]
    }
  }
)
