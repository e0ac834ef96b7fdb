/**
 * The few logger methods Tessera calls, each with a context object first and a message second;
 * pino's logger fits, and so does a console wrapper.
 */
export interface Logger {
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
  error(object: object, message: string): void;
}
