/** The part of the Network Information API (navigator.connection) used here. */
export interface NetworkInfoLike {
  effectiveType?: string;
  saveData?: boolean;
  type?: string;
}

/**
 * How coarse progress updates should be on this network, in ms between updates per task
 * (0 = every update). A metered or slow link gets fewer; terminal events are never held back.
 */
export function progressIntervalFor(network: NetworkInfoLike | undefined | null): number {
  if (!network) return 0;
  if (network.effectiveType === "slow-2g" || network.effectiveType === "2g") return 10_000;
  if (network.saveData || network.effectiveType === "3g" || network.type === "cellular") {
    return 5_000;
  }
  return 0;
}
