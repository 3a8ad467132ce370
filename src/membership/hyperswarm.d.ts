// The parts of hyperswarm (which ships no types) that discovery.ts uses.
declare module 'hyperswarm' {
  import type { Duplex } from 'node:stream';
  export interface SwarmConnection extends Duplex {
    readonly remotePublicKey: Buffer;
    readonly handshakeHash?: Buffer;
  }
  export interface PeerDiscovery {
    flushed(): Promise<void>;
    destroy(): Promise<void>;
  }
  export default class Hyperswarm {
    constructor(options?: { bootstrap?: { host: string; port: number }[]; maxPeers?: number; dht?: import('hyperdht').default });
    join(topic: Buffer, options?: { server?: boolean; client?: boolean }): PeerDiscovery;
    flush(): Promise<void>;
    on(event: 'connection', listener: (connection: SwarmConnection) => void): this;
    destroy(): Promise<void>;
  }
}
declare module 'hyperdht' {
  export default class DHT {
    constructor(options?: { bootstrap?: { host: string; port: number }[]; host?: string; port?: number });
    destroy(): Promise<void>;
  }
}
declare module 'hyperdht/testnet.js' {
  export default function createTestnet(size?: number, options?: { host?: string }): Promise<{ bootstrap: { host: string; port: number }[]; destroy(): Promise<void> }>;
}
