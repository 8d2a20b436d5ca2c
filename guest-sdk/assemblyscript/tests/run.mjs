// Compiles tests/codec.ts with asc (in memory) and runs it: `npm test`. Exits 1 on any failure.
import asc from "assemblyscript/asc";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
let binary = null;
const { error, stderr } = await asc.main(
  [join(here, "codec.ts"), "--outFile", "codec.wasm", "-O1", "--runtime", "stub", "--use", "abort=tests/codec/abort", "--debug"],
  { writeFile(name, contents) { if (name.endsWith(".wasm")) binary = contents; } },
);
if (error) {
  console.error(stderr.toString());
  console.error("codec tests: compilation failed:", error.message);
  process.exit(1);
}
let memory = null;
const text = (ptr, len) => new TextDecoder().decode(new Uint8Array(memory.buffer, ptr, len));
const { instance } = await WebAssembly.instantiate(binary, {
  wasmhost: { log: (ptr, len) => console.log(text(ptr, len)) },
});
memory = instance.exports.memory;
const failures = instance.exports.run();
if (failures !== 0) {
  console.error(`codec tests: ${failures} failure(s)`);
  process.exit(1);
}
console.log("codec tests: ok");
