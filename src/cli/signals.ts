/** Where the daemon wants the signals that come after the one that stopped it, and SIGHUP. */
export interface SignalRoute {
  /** A SIGTERM or SIGINT after the first: ignored, the daemon is already stopping. */
  readonly again: (signal: NodeJS.Signals) => void;
  /** SIGHUP: reload the goals. */
  readonly hup: () => void;
}

/**
 * The daemon's one set of process signal listeners. The first SIGTERM or
 * SIGINT aborts `signal`; none of them is fatal while the listeners stay.
 */
export interface SignalStop {
  /** Aborted (reason: the signal's name) by the first SIGTERM or SIGINT. */
  readonly signal: AbortSignal;
  /** Hands later SIGTERM/SIGINT and every SIGHUP to `to` until the returned function is called; unrouted, they are ignored. */
  route(to: SignalRoute): () => void;
  /** Removes the listeners: the signals' default actions apply again. */
  close(): void;
}

/**
 * Listens for SIGTERM, SIGINT and SIGHUP. Both launchers (`takeSignals` in
 * launch.ts) call it at their first moment for `run` and never close it, so that no
 * signal kills a daemon that is still loading or already shutting down;
 * `main` calls it for a caller that brought none, and closes it after.
 */
export function stopOnSignals(): SignalStop {
  const controller = new AbortController();
  let route: SignalRoute | undefined;
  const onStop = (signal: NodeJS.Signals): void => {
    if (!controller.signal.aborted) controller.abort(signal);
    else route?.again(signal);
  };
  // A SIGHUP before the goals are first read has nothing to reload: that first read is to come.
  const onHup = (): void => route?.hup();
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', onHup);
  return {
    signal: controller.signal,
    route(to) {
      route = to;
      return () => {
        if (route === to) route = undefined;
      };
    },
    close() {
      process.off('SIGTERM', onStop);
      process.off('SIGINT', onStop);
      process.off('SIGHUP', onHup);
    },
  };
}
