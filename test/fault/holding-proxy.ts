import { once } from "node:events";
import { createConnection, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP proxy in front of one server that can stop passing the server's answers
 * on ({@link hold}) and then reset every client connection ({@link reset}): requests still
 * reach the server and take effect, but their answers are lost, as when a process dies right
 * after committing.
 */
export class HoldingProxy {
  readonly #server: Server;
  /** e.g. `http://127.0.0.1:40123` */
  readonly url: string;
  readonly #sockets: Set<Socket>;
  readonly #hold: () => void;

  /** The port it listens on. */
  readonly port: number;

  private constructor(server: Server, url: string, port: number, sockets: Set<Socket>, hold: () => void) {
    this.#server = server;
    this.url = url;
    this.port = port;
    this.#sockets = sockets;
    this.#hold = hold;
  }

  /** Listens on a free port of `host` (default 127.0.0.1) and forwards to `target`. */
  static async start(target: { host: string; port: number }, host = "127.0.0.1"): Promise<HoldingProxy> {
    const sockets = new Set<Socket>();
    let holding = false;
    const server = createServer((client) => {
      const upstream = createConnection(target);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on("close", () => sockets.delete(socket));
        socket.on("error", () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.on("data", (chunk: Buffer) => upstream.write(chunk));
      // Answers are dropped, not buffered, while holding: they must never arrive.
      upstream.on("data", (chunk: Buffer) => {
        if (!holding) client.write(chunk);
      });
      client.on("end", () => upstream.end());
      upstream.on("end", () => client.end());
    });
    server.listen(0, host);
    await once(server, "listening");
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("proxy has no TCP address");
    return new HoldingProxy(server, `http://${host}:${address.port}`, address.port, sockets, () => {
      holding = true;
    });
  }

  /** From now on the server's answers are dropped. */
  hold(): void {
    this.#hold();
  }

  /** Resets every connection; new ones are refused from now on. */
  async reset(): Promise<void> {
    if (!this.#server.listening) return;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    await closed;
  }
}
