/** Domain-level (non-device) parts of the model: firmware and boot files, fw_cfg, memory, labels. */
import type { MemoryBacking, OsConfig, SecLabel } from "./model.js";
import type { XmlElement } from "./tree.js";
import { defined, path, textPath, token, yesNo } from "./fields.js";
import { checkLabel } from "./values.js";
import { storageLayer } from "./storage.js";

export function readOs(os: XmlElement | undefined): OsConfig {
  if (!os) return { acpiTables: [] };
  const loaderEl = os.child("loader");
  const loaderPath = textPath(loaderEl);
  const acpiTables = (os.child("acpi")?.children("table") ?? []).flatMap((t) => textPath(t) ?? []);
  return defined({
    loader:
      loaderEl && loaderPath !== undefined
        ? defined({ path: loaderPath, readonly: yesNo(loaderEl, "readonly"), type: token(loaderEl, "type") })
        : undefined,
    nvram: readNvram(os.child("nvram")),
    kernel: textPath(os.child("kernel")),
    initrd: textPath(os.child("initrd")),
    dtb: textPath(os.child("dtb")),
    acpiTables,
    shim: textPath(os.child("shim")),
  });
}

/**
 * Two spellings: the original `<nvram template=...>PATH</nvram>`, and since libvirt 8.5
 * `<nvram type='file|block|network'><source .../></nvram>`, which is a storage source like a
 * disk's (so a network NVRAM has no path).
 */
function readNvram(el: XmlElement | undefined): OsConfig["nvram"] {
  if (!el) return undefined;
  const template = path(el, "template");
  const format = token(el, "format");
  const type = token(el, "type");
  if (type === undefined) {
    const text = textPath(el);
    if (text === undefined && template === undefined) return undefined;
    return defined({ path: text, template, format });
  }
  const layer = storageLayer(el, type);
  return defined({ path: layer.path, template, type, format: format ?? layer.format, backingStore: layer.backingStore });
}

/** `<sysinfo type='fwcfg'><entry name=... file=.../>`: files QEMU reads into fw_cfg. */
export function readFwcfgFiles(domain: XmlElement): string[] {
  return domain
    .children("sysinfo")
    .filter((s) => s.attr("type") === "fwcfg")
    .flatMap((s) => s.children("entry").flatMap((e) => path(e, "file") ?? []));
}

export function readMemoryBacking(el: XmlElement | undefined): MemoryBacking {
  if (!el) return { hugepages: false };
  const source = el.child("source");
  return defined({ hugepages: el.has("hugepages"), sourceType: source && token(source, "type") });
}

export function readSecLabels(domain: XmlElement): SecLabel[] {
  return domain.children("seclabel").map((s) => {
    const labelEl = s.child("label");
    return defined({
      type: token(s, "type"),
      model: token(s, "model"),
      relabel: s.attr("relabel") === undefined ? undefined : yesNo(s, "relabel"),
      label: labelEl ? labelEl.convert("label", labelEl.text(), checkLabel) : undefined,
    });
  });
}
