import { connect, type Socket } from 'node:net';

/** A minimal QMP client: one command at a time, events ignored. */
export class Qmp {
  private buffer = '';
  private waiting: ((msg: any) => void)[] = [];

  private constructor(private socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl).trim();
        this.buffer = this.buffer.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line);
        if (msg.event) continue;
        this.waiting.shift()?.(msg);
      }
    });
    socket.on('error', () => {});
  }

  static async connect(path: string, timeoutMs = 10000): Promise<Qmp> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path, () => resolve(s));
          s.once('error', reject);
        });
        const qmp = new Qmp(socket);
        await qmp.next(); // greeting
        await qmp.execute('qmp_capabilities');
        return qmp;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`QMP socket ${path} did not answer: ${error}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private next(): Promise<any> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  async execute(command: string, args?: Record<string, unknown>): Promise<any> {
    const reply = this.next();
    this.socket.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    const msg = await reply;
    if (msg.error) throw new Error(`QMP ${command}: ${msg.error.desc}`);
    return msg.return;
  }

  close(): void {
    this.socket.destroy();
  }
}
