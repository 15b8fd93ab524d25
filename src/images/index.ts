/** Backing-chain discovery from disk image headers (qcow2, qed, vmdk). */
export { discoverChain, type ChainEntry, type ChainTouch, type ChainWalk } from "./chain.js";
export { probeFormat } from "./probe.js";
export { readQcow2 } from "./qcow2.js";
export { readQed } from "./qed.js";
export { readVmdk } from "./vmdk.js";
export { bytesOf, type ImageBytes, type LayerRefs } from "./bytes.js";
