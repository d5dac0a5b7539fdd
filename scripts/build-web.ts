/**
 * Builds the web app into public/ (what Vercel serves, and `npm start` through
 * lib/server/static.ts): web/app.ts and web/styles.css bundled by esbuild, Swagger UI's
 * assets copied from swagger-ui-dist for /docs, every asset named by a hash of its content
 * (`/assets/name-HASH.ext`, cached for a year), the pages' placeholders filled in, and a
 * `.br` and `.gz` twin of every text file. No network: everything comes from node_modules.
 *
 *   npx tsx scripts/build-web.ts        (run by `npm start` (scripts/start.ts, once the port is free and when web/ changed), `vercel build` (vercel.json
 *                                buildCommand) and the test suite's global setup)
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const web = join(root, "web");
const publicDir = join(root, "public");
const assetsDir = join(publicDir, "assets");
const require = createRequire(import.meta.url);

/** 8 characters of the content's SHA-256, upper-case hex (lib/server/static.ts recognises the shape). */
const hashOf = (content: Buffer | string) => createHash("sha256").update(content).digest("hex").slice(0, 8).toUpperCase();

const compressible = new Set([".html", ".js", ".css", ".json", ".svg", ".txt", ".map"]);

function writeCompressed(file: string, content: Buffer): void {
  writeFileSync(file, content);
  if (!compressible.has(extname(file)) || content.length < 512) return;
  writeFileSync(file + ".gz", gzipSync(content, { level: 9 }));
  // Quality 11 is slow on Swagger UI's 1.4 MB bundle; hashed names let an unchanged one be kept.
  const quality = content.length > 200_000 ? 9 : 11;
  writeFileSync(file + ".br", brotliCompressSync(content, { params: { [constants.BROTLI_PARAM_QUALITY]: quality } }));
}

export async function buildWeb(): Promise<{ files: string[]; ms: number }> {
  const started = Date.now();
  mkdirSync(assetsDir, { recursive: true });
  const names: Record<string, string> = {};
  const keep = new Set<string>();

  // Loaded here, so a server installed without devDependencies can say what is missing (below).
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: { app: join(web, "app.ts"), "app-style": join(web, "styles.css"), docs: join(web, "docs", "docs.ts") },
    bundle: true,
    minify: true,
    format: "esm",
    target: ["es2020"],
    outdir: assetsDir,
    entryNames: "[name]-[hash]",
    metafile: true,
    write: false,
    legalComments: "none",
    logLevel: "warning",
  });
  for (const file of result.outputFiles) {
    const name = basename(file.path);
    const logical = name.startsWith("app-style-") ? "app.css" : name.startsWith("app-") ? "app.js" : "docs.js";
    // esbuild's hash covers inputs; name by the output's own content so equal bytes keep equal names.
    const hashed = `${logical.replace(/\.(js|css)$/, "")}-${hashOf(Buffer.from(file.contents))}${extname(name)}`;
    names[logical] = `/assets/${hashed}`;
    keep.add(hashed);
    if (!existsSync(join(assetsDir, hashed))) writeCompressed(join(assetsDir, hashed), Buffer.from(file.contents));
  }

  const swagger = dirname(require.resolve("swagger-ui-dist/package.json"));
  for (const asset of ["swagger-ui-bundle.js", "swagger-ui.css"]) {
    const content = readFileSync(join(swagger, asset));
    const hashed = `${asset.replace(/\.(js|css)$/, "")}-${hashOf(content)}${extname(asset)}`;
    names[asset] = `/assets/${hashed}`;
    keep.add(hashed);
    if (!existsSync(join(assetsDir, hashed))) writeCompressed(join(assetsDir, hashed), content);
  }

  // Assets of earlier builds go; the ones just named stay (with their .br/.gz twins).
  for (const entry of readdirSync(assetsDir)) {
    const base = entry.replace(/\.(br|gz)$/, "");
    if (!keep.has(base)) rmSync(join(assetsDir, entry));
  }

  const fill = (template: string) =>
    template.replace(/\{\{([a-z.-]+)\}\}/g, (_, key: string) => {
      const value = names[key];
      if (!value) throw new Error(`scripts/build-web.ts: no asset named ${key}`);
      return value;
    });
  writeCompressed(join(publicDir, "index.html"), Buffer.from(fill(readFileSync(join(web, "index.html"), "utf8"))));
  mkdirSync(join(publicDir, "docs"), { recursive: true });
  writeCompressed(join(publicDir, "docs", "index.html"), Buffer.from(fill(readFileSync(join(web, "docs", "index.html"), "utf8"))));

  return { files: [...keep].map((f) => `assets/${f}`).concat(["index.html", "docs/index.html"]), ms: Date.now() - started };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  buildWeb().then(
    ({ files, ms }) => process.stdout.write(`web: built ${files.length} files into public/ in ${ms} ms\n`),
    (error: unknown) => {
      // Installed without devDependencies (npm ci --omit=dev): the API still starts, without the web app.
      if ((error as { code?: unknown }).code === "ERR_MODULE_NOT_FOUND" || (error as { code?: unknown }).code === "MODULE_NOT_FOUND") {
        process.stderr.write(
          "web: not built: esbuild or swagger-ui-dist is missing (devDependencies; run npm ci without --omit=dev); the API runs without the web app\n",
        );
        return;
      }
      process.stderr.write(`web: build failed: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}
