export { tessera, type TesseraPluginOptions } from "./tessera-plugin.js";
export { createAuthService } from "../service/create-auth-service.js";
export { createServer, type ServerOptions } from "./server.js";
export { HTTP_ERRORS, type HttpErrorShape } from "../core/http-errors.js";
export { httpErrorOf } from "./error-handler.js";
