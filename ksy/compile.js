// Compile .ksy files with the Kaitai Struct compiler (the npm package
// kaitai-struct-compiler, a JavaScript library) and write the generated sources.
//
//   node ksy/compile.js NODE_MODULES LANGUAGE OUTDIR FILE.ksy...
//
// NODE_MODULES holds kaitai-struct-compiler and yaml (`make kaitai` installs
// both into build/kaitai). Exit 1 with the compiler's message on an error.
"use strict";
const fs = require("fs");
const path = require("path");

const [modulesArg, lang, outdir, ...files] = process.argv.slice(2);
const modules = path.resolve(modulesArg);
const compiler = require(path.join(modules, "kaitai-struct-compiler"));
const YAML = require(path.join(modules, "yaml"));

async function main() {
  fs.mkdirSync(outdir, { recursive: true });
  for (const file of files) {
    const ksy = YAML.parse(fs.readFileSync(file, "utf8"));
    let out;
    try {
      out = await compiler.compile(lang, ksy, null, false);
    } catch (e) {
      throw new Error(`${file}: ${e && e.toString ? e.toString() : JSON.stringify(e)}`);
    }
    for (const [name, text] of Object.entries(out)) {
      fs.writeFileSync(path.join(outdir, name), text);
    }
  }
}

main().catch((e) => {
  process.stderr.write(`${e && e.message ? e.message : e}\n`);
  process.exit(1);
});
