// Bundles the account page (src/account-page) into dist/account-page: one script and one
// stylesheet with content hashes in their names, the HTML shell pointing at them, and a
// manifest the server reads at startup. Run by `npm run build` after tsc.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const source = `${root}src/account-page/`;
const out = `${root}dist/account-page/`;

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: [`${source}main.ts`, `${source}account.css`],
  entryNames: "account-[hash]",
  outdir: out,
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022", "chrome110", "firefox110", "safari16"],
  platform: "browser",
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
});
const assets = Object.keys(result.metafile.outputs).map((path) => basename(path));
const script = assets.find((name) => name.endsWith(".js"));
const style = assets.find((name) => name.endsWith(".css"));
if (script === undefined || style === undefined)
  throw new Error("build-account-page: esbuild wrote no script or stylesheet");
const shell = await readFile(`${source}account.html`, "utf8");
await writeFile(`${out}index.html`, shell.replaceAll("{{script}}", script).replaceAll("{{style}}", style));
await writeFile(`${out}manifest.json`, `${JSON.stringify({ html: "index.html", assets }, null, 2)}\n`);
const sizes = await Promise.all(
  assets.map(async (name) => `${name} ${((await readFile(`${out}${name}`)).length / 1024).toFixed(1)} KiB`),
);
console.log(`account page: ${sizes.join(", ")}`);
