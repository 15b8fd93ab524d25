export { detectEnvironment, type ApparmorEnvironment, type LoadTarget } from "./environment.js";
export { Parser, type CompileOptions, type LoadOptions } from "./parser.js";
export { loadedProfiles, profileMode } from "./loaded.js";
export { removeCacheEntries } from "./cache.js";
export { runParser, parserFailed, parserMessage, type ParserResult } from "./runner.js";
export { removeStoreEntries } from "./compiled-store.js";
export { compiledStoreUse, loadProfile, type StoreUse } from "./store-load.js";
