export { tessera, createAuthService, type TesseraPluginOptions } from "./tessera-plugin.js";
export { createServer, type ServerOptions } from "./server.js";
export { HTTP_ERRORS, type HttpErrorShape, httpErrorOf } from "./error-map.js";
