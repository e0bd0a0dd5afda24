// Measures what the client costs a browser page: src/index.ts bundled by esbuild as one
// minified ES module (everything a page importing the package loads), then gzip -9.
// Prints one line, `bundle: <min> bytes minified, <gz> bytes minified + gzip`, which
// `cargo xtask package` compares with the figure in README.md.
import { build } from "esbuild";
import { gzipSync } from "node:zlib";

const result = await build({
  entryPoints: ["src/index.ts"],
  bundle: true,
  minify: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  legalComments: "none",
  write: false,
});
const code = result.outputFiles[0].contents;
const gzipped = gzipSync(code, { level: 9 });
console.log(`bundle: ${code.length} bytes minified, ${gzipped.length} bytes minified + gzip`);
