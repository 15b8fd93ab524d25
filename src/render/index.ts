// render/: rule IR → AppArmor profile text. The only place that produces profile text or escapes.
export { escapeLiteral } from "./escape.js";
export { commentText } from "./comment.js";
export { renderFiles, renderRule, renderPerms, type FilesOwner } from "./files.js";
export { filesIncludeLine, legacyFilesInclude, profileFlags, renderProfile, TEMPLATE_PLACEHOLDER } from "./profile.js";
