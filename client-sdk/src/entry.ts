/**
 * What the node and browser entry points have in common: given their NATS
 * client's `connect` and default options, the connect function, a bus
 * factory and a createUnderstudyClient that uses them for `natsServers`.
 */
import {
  createUnderstudyClient as createCoreClient,
  type UnderstudyClient,
  type UnderstudyClientOptions,
} from "./client.ts";
import {
  createNatsNoticeBus,
  type NatsBusOptions,
  type NatsConnectionLike,
  type NatsNoticeBus,
} from "./nats-bus.ts";

export interface NatsEntry<NatsOptions> {
  /** Opens a NATS connection with the entry's defaults, overridden by `extra`. */
  connectNats(servers: readonly string[], extra?: NatsOptions): Promise<NatsConnectionLike>;
  /** A NoticeBus owning one connection (share it between SDK clients with `bus`). */
  createNatsBus(
    servers: readonly string[],
    opts?: { nats?: NatsOptions } & Omit<NatsBusOptions, "connect">,
  ): NatsNoticeBus;
  /** createUnderstudyClient with `natsServers` served by this entry's NATS client. */
  createUnderstudyClient(opts: UnderstudyClientOptions & { nats?: NatsOptions }): UnderstudyClient;
}

export function createNatsEntry<NatsOptions extends object>(
  connect: (opts: NatsOptions & { servers: string[] }) => Promise<NatsConnectionLike>,
  defaults: NatsOptions,
): NatsEntry<NatsOptions> {
  const connectNats = (servers: readonly string[], extra?: NatsOptions) =>
    connect({ ...defaults, ...extra, servers: [...servers] });
  return {
    connectNats,
    createNatsBus(servers, opts = {}) {
      const { nats, ...busOpts } = opts;
      return createNatsNoticeBus({ ...busOpts, connect: () => connectNats(servers, nats) });
    },
    createUnderstudyClient(opts) {
      const { nats, ...rest } = opts;
      return createCoreClient({ natsConnect: (servers) => connectNats(servers, nats), ...rest });
    },
  };
}
