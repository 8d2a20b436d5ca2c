// hello: logs one line and answers "Hello from AssemblyScript!\n".
import { Request, Response, log, setHandler } from "wasmhost/assembly";
export { wasmhost_alloc, wasmhost_handle } from "wasmhost/assembly";

setHandler((req: Request): Response => {
  log("hello called: " + req.method + " " + req.path);
  return Response.text(200, "Hello from AssemblyScript!\n");
});
