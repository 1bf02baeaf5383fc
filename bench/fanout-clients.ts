// The subscriber side of `npm run bench:fanout`, in a process of its own (started by bench/fanout.ts
// over IPC): N raw graphql-ws connections, one subscription each. A frame is matched to the message
// it carries by the tag in the message body, without parsing the JSON, so this process spends as
// little as it can per frame: whatever it spends falls on both servers alike.
import WebSocket from 'ws';

export interface ClientSpec {
  url: string;
  token: string;
  variables: Record<string, unknown>;
}

export type Command =
  | { cmd: 'connect'; query: string; clients: ClientSpec[]; stallEvery: number; concurrency: number }
  | { cmd: 'reset' }
  | { cmd: 'report'; tags: string[] }
  | { cmd: 'close' };

export interface ConnectReply {
  connected: number;
  failed: number;
  stalled: number;
  firstError: string | null;
}

export interface Report {
  /** Per tag: receive times (performance.timeOrigin + now) of the clients that read on. */
  times: Record<string, number[]>;
  /** Per tag: how many stalled clients had it by now (they stop reading; their kernel buffers may hold more). */
  stalledReceived: Record<string, number>;
  /** Subscriptions that received an error or complete. */
  ended: number;
  endedSample: string | null;
}

const TAG = /fanout-[a-z0-9]+-\d+/;
const now = () => performance.timeOrigin + performance.now();

interface Client {
  socket: WebSocket;
  stalled: boolean;
}

let clients: Client[] = [];
let times = new Map<string, number[]>();
let stalledReceived = new Map<string, number>();
let ended = 0;
let endedSample: string | null = null;

function open(spec: ClientSpec, query: string, stalled: boolean): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(spec.url.replace(/^http/, 'ws'), 'graphql-transport-ws', { perMessageDeflate: false });
    const client: Client = { socket, stalled };
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error('no connection_ack within 60 s'));
    }, 60_000);
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${spec.token}` } })));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('message', (data: Buffer) => {
      const text = data.toString();
      if (text.includes('"connection_ack"')) {
        clearTimeout(timer);
        socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables: spec.variables } }));
        // A stalled client stops reading once subscribed: its socket is paused, its kernel buffers fill.
        if (stalled) socket.pause();
        resolve(client);
        return;
      }
      if (text.includes('"type":"ping"')) {
        socket.send('{"type":"pong"}');
        return;
      }
      if (text.includes('"type":"next"') && !text.includes('"errors"')) {
        const tag = TAG.exec(text)?.[0];
        if (!tag) return;
        if (stalled) stalledReceived.set(tag, (stalledReceived.get(tag) ?? 0) + 1);
        else {
          let list = times.get(tag);
          if (!list) times.set(tag, (list = []));
          list.push(now());
        }
        return;
      }
      if (text.includes('"type":"error"') || text.includes('"type":"complete"') || text.includes('"errors"')) {
        ended += 1;
        endedSample ??= text.slice(0, 300);
      }
    });
  });
}

async function connect(command: Extract<Command, { cmd: 'connect' }>): Promise<ConnectReply> {
  let connected = 0;
  let failed = 0;
  let stalled = 0;
  let firstError: string | null = null;
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < command.clients.length; i = next++) {
      const stall = command.stallEvery > 0 && i % command.stallEvery === command.stallEvery - 1;
      try {
        clients.push(await open(command.clients[i]!, command.query, stall));
        connected += 1;
        if (stall) stalled += 1;
      } catch (error) {
        failed += 1;
        firstError ??= String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: command.concurrency }, worker));
  return { connected, failed, stalled, firstError };
}

async function close() {
  await Promise.all(
    clients.map(
      ({ socket }) =>
        new Promise<void>((resolve) => {
          if (socket.readyState === WebSocket.CLOSED) return resolve();
          socket.once('close', () => resolve());
          socket.terminate();
        }),
    ),
  );
  clients = [];
}

process.on('message', async (command: Command) => {
  switch (command.cmd) {
    case 'connect':
      process.send!({ reply: 'connect', ...(await connect(command)) });
      break;
    case 'reset':
      times = new Map();
      stalledReceived = new Map();
      ended = 0;
      endedSample = null;
      process.send!({ reply: 'reset' });
      break;
    case 'report': {
      const report: Report = {
        times: Object.fromEntries(command.tags.map((tag) => [tag, times.get(tag) ?? []])),
        stalledReceived: Object.fromEntries(command.tags.map((tag) => [tag, stalledReceived.get(tag) ?? 0])),
        ended,
        endedSample,
      };
      process.send!({ reply: 'report', ...report });
      break;
    }
    case 'close':
      await close();
      process.send!({ reply: 'close' });
      break;
  }
});
