// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "coverage/**", "bench/out/**", ".rfboot/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-constant-condition": ["error", { checkLoops: false }],
    },
  },
  {
    // The CLI is a client of the modules' public faces: a deep import would let it depend on internals that
    // change without notice, and would widen what each index.ts promises without anyone deciding to.
    files: ["src/cli/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              regex: "^(\\.\\./)+(provisioner|controller|xmlgen)/(?!index\\.js$)",
              message:
                "src/cli imports provisioner, controller and xmlgen through their index.js only; export what the CLI needs from that index.ts",
            },
          ],
        },
      ],
    },
  },
);
