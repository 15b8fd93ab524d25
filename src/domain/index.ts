export { parseDomain, emptyDevices } from "./parse.js";
export type * from "./model.js";
export { MAX_XML_BYTES, MAX_DEPTH, MAX_MARKUP_ITEMS, MAX_VALUE_CHARS, MAX_NAME_CHARS } from "./limits.js";
