export { tessera, type TesseraPluginOptions } from "./tessera-plugin.js";
export { openServices, type TesseraServices } from "../service/tessera-services.js";
export { createServer, type ServerOptions } from "./server.js";
export { HTTP_ERRORS, type HttpErrorShape } from "../core/http-errors.js";
export { httpErrorOf } from "./error-handler.js";
