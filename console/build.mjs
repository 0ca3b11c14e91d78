// Builds the console bundle: src/main.jsx → app.js and app.css in OUT_DIR
// (default ../internal/console/dist). The output depends only on the
// sources and the pinned packages: no timestamps, hashes or source maps.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = process.env.OUT_DIR || path.join(here, "..", "internal", "console", "dist");

await build({
  entryPoints: { app: path.join(here, "src", "main.jsx") },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2020"],
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "none",
  charset: "utf8",
  sourcemap: false,
  outdir,
  logLevel: "warning",
  absWorkingDir: here,
});
